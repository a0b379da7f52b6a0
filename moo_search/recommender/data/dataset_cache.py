"""A loaded dataset kept as Parquet in the data cache, so that a slow loader (Book-Crossing:
pandas over 1.1M rows, editions collapsed, a k-core) runs once per input and options.

An entry is one zip of Parquet tables (interactions, items, users, the original ids) and a
JSON member (name, genres, notes), written and read through :mod:`moo_search.recommender.cache`:
checked against its SHA-256 on every read, written atomically, and recomputed with a warning
when it is altered or unreadable. Its file name is the hash of the key the loader gives: the
input's identity (a pinned wheel's hash, or a user file's size and modification time) and
every loader option, plus :data:`LOADER_VERSION`; another key is another entry. Original ids
are kept as strings (a loader whose ids are not strings does not use this cache).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from moo_search.recommender.cache import read_entry, write_entry
from moo_search.recommender.data._dataset import Dataset

__all__ = ["LOADER_VERSION", "cached_dataset", "file_identity"]

LOADER_VERSION = 1
"""Bumped when a cached loader's output changes: older entries are not read again."""


def file_identity(paths: list[Path]) -> dict[str, list[int]]:
    """A user's input files by size and modification time (a changed file is another key)."""
    out = {}
    for p in paths:
        st = p.stat()
        out[p.name] = [st.st_size, st.st_mtime_ns]
    return out


def cached_dataset(name: str, key: dict[str, Any], load: Callable[[], Dataset]) -> Dataset:
    """``load()``'s dataset, from the cache entry of ``key`` where there is a good one; a
    fresh load is written there (a cache that cannot be written is skipped, with a warning)."""
    from moo_search.recommender.data.movielens import cache_dir

    full = {"version": LOADER_VERSION, **key}
    digest = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()
    path = cache_dir() / "datasets" / name / f"{digest[:24]}.zip"
    what = f"cached {name} dataset"
    ds = read_entry(path, _read, what=what)
    if ds is not None:
        return ds
    ds = load()
    write_entry(path, lambda f: _write(ds, f), what=what, key=full)
    return ds


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _write(ds: Dataset, f: IO[bytes]) -> None:
    meta = {
        "name": ds.name,
        "genres": list(ds.genres),
        "notes": list(ds.notes),
        "n_users": ds.n_users,
        "list_columns": [c for c in ds.items.columns if _holds_lists(ds.items[c])],
    }
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        z.writestr("meta.json", json.dumps(meta))
        z.writestr("interactions.parquet", _parquet(ds.interactions))
        z.writestr("items.parquet", _parquet(ds.items))
        z.writestr("users.parquet", _parquet(ds.users))
        z.writestr("user_ids.parquet", _parquet(pd.DataFrame({"id": ds.user_ids.astype(str)})))
        z.writestr("item_ids.parquet", _parquet(pd.DataFrame({"id": ds.item_ids.astype(str)})))


def _holds_lists(col: pd.Series) -> bool:
    return bool(len(col)) and isinstance(col.iloc[0], list)


def _read(path: Path) -> Dataset:
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("meta.json"))

        def table(member: str) -> pd.DataFrame:
            return pd.read_parquet(io.BytesIO(z.read(member)))

        items = table("items.parquet")
        for c in meta["list_columns"]:
            items[c] = items[c].map(list)  # Parquet gives arrays back
        users = table("users.parquet")
        if not len(users.columns):
            users = pd.DataFrame(index=range(meta["n_users"]))
        return Dataset(
            name=meta["name"],
            interactions=table("interactions.parquet"),
            items=items,
            users=users,
            user_ids=np.array(table("user_ids.parquet")["id"].tolist(), dtype=object),
            item_ids=np.array(table("item_ids.parquet")["id"].tolist(), dtype=object),
            genres=list(meta["genres"]),
            notes=list(meta["notes"]),
        )
