"""Binding artifacts to the trial that wrote them: SHA-256 of every file, checked on read."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from moo_search.errors import StorageError
from moo_search.study._keys import ATTR

__all__ = [
    "ArtifactMismatch",
    "artifact_hashes",
    "artifact_status",
    "check_artifacts",
    "sha256_file",
]


class ArtifactMismatch(StorageError):
    """An artifact file is missing or is not the one its trial recorded."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by POSIX path relative to it."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def check_artifacts(t: Any, art: Path | None = None) -> dict[str, Any]:
    """Check that the trial's artifact files are the ones it recorded when it completed.

    Returns ``{"status": "verified", "files": n}``, or ``{"status": "unverified", ...}`` for a
    trial from before hashes were recorded.

    Raises:
        ArtifactMismatch: a recorded file is missing or hashes differently (the message names
            the trial, the file and both hashes).
    """
    recorded = t.user_attrs.get(ATTR.ARTIFACT_SHA256)
    if not recorded:
        return {"status": "unverified", "reason": "the trial predates artifact hashes"}
    root = Path(art if art is not None else t.user_attrs.get(ATTR.ARTIFACTS) or "")
    for rel, sha in sorted(recorded.items()):
        p = root / rel
        if not p.is_file():
            raise ArtifactMismatch(
                f"trial {t.number}: artifact {p} recorded when the trial completed is missing"
            )
        got = sha256_file(p)
        if got != sha:
            raise ArtifactMismatch(
                f"trial {t.number}: artifact {p} is not the one this trial wrote (SHA-256 "
                f"recorded {sha}, found {got}); another run may have overwritten it"
            )
    return {"status": "verified", "files": len(recorded)}


def artifact_status(t: Any, cache: dict[Any, tuple[str, str]] | None = None) -> tuple[str, str]:
    """``(status, message)`` of a trial's artifacts, for reports: ``verified``, ``unverified``
    (recorded before hashes), ``none`` (the trial has no artifacts), ``missing`` (not on this
    machine) or ``altered`` (the message names the file and both hashes).

    ``cache`` (keyed by directory and recorded hashes) lets inference-only variants, which share
    their trained trial's files, be checked once.
    """
    recorded = t.user_attrs.get(ATTR.ARTIFACT_SHA256)
    art = t.user_attrs.get(ATTR.ARTIFACTS)
    if not art:
        return "none", ""
    if not recorded:
        return "unverified", "the trial predates artifact hashes"
    key = (art, tuple(sorted(recorded.items())))
    if cache is not None and key in cache:
        return cache[key]
    if not Path(art).is_dir():
        out = ("missing", f"trial {t.number}: artifacts {art} are not on this machine")
    else:
        try:
            check_artifacts(t, Path(art))
            out = ("verified", "")
        except ArtifactMismatch as e:
            out = ("altered", str(e))
    if cache is not None:
        cache[key] = out
    return out
