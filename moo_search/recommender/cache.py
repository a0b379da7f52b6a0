"""Verified cache entries: what every on-disk cache of derived data (closed-form backbones,
frozen-layer outputs) writes and reads.

An entry is a file plus a sidecar (``<file>.json``) that records what the file must hold: its
SHA-256 and size, and what the writer says of it (shape, dtype). A read checks the sidecar,
so a truncated, corrupted, zeroed or foreign file is never used: it is removed with one
warning naming it, and the caller recomputes. A write goes to a temporary file in the same
directory and is renamed into place (concurrent workers never read half a file); any failure
(a full disk, a read-only mount, a cache path that is a file) leaves nothing behind and
degrades to no cache with a warning. The cache is an optimisation, never a source of error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = ["read_entry", "write_entry"]

logger = logging.getLogger("moo_search")

T = TypeVar("T")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _discard(path: Path, what: str, why: str) -> None:
    logger.warning("%s %s %s; recomputing it", what, path, why)
    for p in (path, _sidecar(path)):
        with contextlib.suppress(OSError):
            p.unlink()


def read_entry(
    path: Path,
    load: Callable[[Path], T],
    *,
    what: str,
    check: Callable[[T], str | None] | None = None,
) -> T | None:
    """The value cached at ``path``, or None when there is none or it is not what its sidecar
    says (then it is removed, with a warning naming it). ``check`` returns why a loaded value
    is wrong (a shape the caller did not expect), or None."""
    try:
        if not path.is_file():
            return None
        meta = json.loads(_sidecar(path).read_text())
        if not isinstance(meta, dict) or meta.get("size") != path.stat().st_size:
            _discard(path, what, "does not have the size its record says")
            return None
        if meta.get("sha256") != _sha256(path):
            _discard(path, what, "does not match its checksum (altered or corrupt)")
            return None
        value = load(path)
    except FileNotFoundError:
        _discard(path, what, "has no record of what it holds")
        return None
    except Exception as e:  # OSError, EOFError, an unpickling error, a refused format ...
        _discard(path, what, f"is unreadable ({type(e).__name__})")
        return None
    why = check(value) if check is not None else None
    if why:
        _discard(path, what, why)
        return None
    return value


def write_entry(path: Path, save: Callable[[IO[bytes]], None], *, what: str, **meta: Any) -> bool:
    """Write an entry atomically with its sidecar (``meta``: what it holds, for the record);
    False, with a warning and no file left behind, when it cannot be written."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            save(f)
        record = {"sha256": _sha256(Path(tmp)), "size": os.path.getsize(tmp), **meta}
        side_fd, side_tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(side_fd, "w") as f:
                json.dump(record, f, sort_keys=True)
            os.replace(side_tmp, _sidecar(path))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(side_tmp)
            raise
        os.replace(tmp, path)  # after its record: a reader never sees a file without one
        tmp = None
        return True
    except (OSError, RuntimeError) as e:  # ENOSPC, EROFS, ENOTDIR, EACCES; torch wraps some
        logger.warning("could not write the %s %s (%s); going on without it", what, path, e)
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
