"""The bundle on disk: sorted JSON, the sealing manifest, and the one place that decides what
``--out`` may replace."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from moo_search.errors import ExportError, StorageError
from moo_search.stats import jsonable
from moo_search.study import sha256_file

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "check_not_inside",
    "check_out",
    "seal",
    "study_paths",
    "swap_into_place",
    "verify_manifest",
    "write_json",
]

MANIFEST = "manifest.json"
# files MLflow writes into a model directory it downloads (models:/NAME/V): not ours to seal
ADDED_BY_MLFLOW = frozenset({"registered_model_meta"})
FORMAT_VERSION = 1


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _is_bundle(path: Path) -> bool:
    """A directory holding a previous export of ours (its manifest names our format)."""
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and "format_version" in m and isinstance(m.get("files"), dict)


def check_out(out: Path, *, force: bool) -> None:
    """The one place that decides whether ``--out`` may be replaced: only when it does not
    exist, is an empty directory, or (with ``force``) holds a previous bundle of ours; never
    the working directory or one of its parents."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: exists and is not a directory; choose a new path")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ExportError(
            f"--out {out}: is the working directory or one of its parents; export into a new "
            "directory, e.g. exports/knee"
        )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"{out} exists and is not empty; pass --force to replace its contents"
            )
        if not _is_bundle(out):
            raise ExportError(
                f"--out {out}: holds files that are not an export bundle (no manifest.json of "
                "ours); --force replaces only a previous bundle. Nothing was deleted"
            )


def check_not_inside(out: Path, protected: list[Path]) -> None:
    """Refuse an ``--out`` that is, or contains, the study or the trial's artifacts."""
    resolved = out.resolve()
    for p in protected:
        q = p.resolve()
        if resolved == q or resolved in q.parents:
            raise ExportError(
                f"--out {out}: would replace {p} (the study or its artifacts); choose a new path"
            )


def study_paths(target: str | Path) -> list[str]:
    """The study directory and database file behind ``target``, when it is on disk."""
    from moo_search.study import resolve_storage_arg

    try:
        url, study_dir = resolve_storage_arg(str(target))
    except StorageError:  # not a path on disk: the artifact check still applies
        return []
    paths = [str(study_dir)] if study_dir is not None else []
    if url.startswith("sqlite:///"):
        paths.append(url.removeprefix("sqlite:///"))
    return paths


def swap_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished bundle into ``final``; a previous bundle (or empty dir) there is
    moved aside first and removed only once the new one is in place."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / "bundle")
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def seal(out: Path, manifest: dict[str, Any]) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest["files"] = {p.relative_to(out).as_posix(): sha256_file(p) for p in files}
    write_json(out / MANIFEST, manifest)


def _manifest_path(root: Path, mpath: Path, rel: Any) -> Path:
    """The bundle file a manifest entry names: a relative, normalised path inside ``root``
    (no ``..``, no absolute path, no symlink on the way), or an ExportError naming it."""
    pure = PurePosixPath(rel) if isinstance(rel, str) else None
    if (
        pure is None
        or not rel
        or pure.is_absolute()
        or any(part in ("..", ".", "") for part in rel.split("/"))
        or "\\" in rel
    ):
        raise ExportError(
            f"{mpath}: entry {rel!r} is not a relative path inside the bundle; nothing was loaded"
        )
    p = root / pure
    for q in [p, *p.parents]:
        if q == root:
            break
        if q.is_symlink():
            raise ExportError(f"{q}: a symbolic link in the bundle; nothing was loaded")
    return p


def verify_manifest(root: Path) -> dict[str, Any]:
    """Every file of the bundle at ``root`` is listed in its manifest with its SHA-256, and
    nothing else is there; entries stay inside the bundle and no symlink is followed.

    Raises:
        ExportError: naming the file (or entry) that is missing, altered, extra or outside.
    """
    mpath = root / MANIFEST
    if not root.is_dir():
        raise ExportError(f"{root}: not a directory")
    if not mpath.is_file():
        raise ExportError(f"{mpath}: missing; not an export bundle (or an incomplete one)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ExportError(f"{mpath}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(files, dict):
        raise ExportError(
            f"{mpath}: 'files' must map each file's path to its SHA-256, got "
            f"{type(files).__name__}; nothing was loaded"
        )
    for rel, sha in sorted(files.items()):
        p = _manifest_path(root, mpath, rel)
        if not p.is_file():
            raise ExportError(f"{p}: listed in the manifest but missing; nothing was loaded")
        if sha256_file(p) != sha:
            raise ExportError(
                f"{p}: SHA-256 differs from the manifest (altered or corrupt); nothing was loaded"
            )
    links = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink())
    if links:
        raise ExportError(f"{root}: symbolic links in the bundle: {links}; nothing was loaded")
    extra = sorted(
        rel
        for p in root.rglob("*")
        if p.is_file()
        and p.name != MANIFEST
        and (rel := p.relative_to(root).as_posix()) not in files
        and rel not in ADDED_BY_MLFLOW
    )
    if extra:
        raise ExportError(f"{root}: files not in the manifest: {extra}; nothing was loaded")
    return manifest
