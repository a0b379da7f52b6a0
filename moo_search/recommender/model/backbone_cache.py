"""A closed-form backbone's W, computed once per (split, backbone, parameters) and kept in the
on-disk cache (:mod:`moo_search.recommender.cache`: checksummed, healed when damaged); the
SHA-256 of a split and of a W, which trial records and exports pin."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.recommender.cache import read_entry, write_entry
from moo_search.recommender.model.sparse_weights import SparseWeights, Weights

__all__ = ["backbone_sha256", "split_fingerprint"]


def _cache_dir() -> Path:
    from moo_search.recommender.data.movielens import cache_dir

    return cache_dir() / "backbones"


def backbone_sha256(w: Weights) -> str:
    """SHA-256 of W's float32 bytes (C order; for sparse weights, of each factor's shape,
    index and value arrays): what a trial record and an export pin."""
    if isinstance(w, SparseWeights):
        h = hashlib.sha256(b"sparse")
        for name, a in sorted(w.arrays().items()):
            h.update(name.encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()


def split_fingerprint(split: Any) -> str:
    """SHA-256 of what a closed-form backbone is fit on and tuned against: the train and
    validation interactions (user, item, rating), the relevance threshold and, under the
    item-cold protocol, the held-out items (their evaluation is part of the tuning)."""
    h = hashlib.sha256()
    h.update(repr(float(split.threshold)).encode())
    for part in ("train", "val"):
        df = split.part(part)[["user", "item", "rating"]]
        h.update(np.ascontiguousarray(df.to_numpy(dtype=np.float64)).tobytes())
    if split.has_cold_items:
        for items in (split.cold_val_items, split.cold_test_items):
            h.update(b"cold:" + np.ascontiguousarray(items, dtype=np.int64).tobytes())
    return h.hexdigest()


def _key(fingerprint: str, name: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"split": fingerprint, "backbone": name, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cached(
    key: str, compute: Callable[[], np.ndarray], shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """The array cached under ``key`` (a verified entry, :mod:`moo_search.recommender.cache`), else
    ``compute()``'s, written for next time (a cache that cannot be written is skipped)."""
    path = _cache_dir() / f"{key}.npy"

    def check(w: np.ndarray) -> str | None:
        if shape is not None and tuple(w.shape) != shape:
            return f"holds shape {tuple(w.shape)}, not {shape}"
        return None

    w = read_entry(
        path, lambda p: np.load(p, allow_pickle=False), what="backbone cache", check=check
    )
    if w is None:
        w = compute()
        write_entry(
            path,
            lambda f: np.save(f, w),
            what="backbone cache",
            shape=list(w.shape),
            dtype=str(w.dtype),
        )
    return w


def _cached_sparse(key: str, compute: Callable[[], SparseWeights]) -> SparseWeights:
    path = _cache_dir() / f"{key}.npz"

    def load(p: Path) -> SparseWeights:
        with np.load(p, allow_pickle=False) as z:
            return SparseWeights.from_arrays(dict(z))

    w = read_entry(path, load, what="backbone cache")
    if w is None:
        w = compute()
        arrays: dict[str, Any] = w.arrays()
        write_entry(path, lambda f: np.savez(f, **arrays), what="backbone cache", nnz=w.nnz)
    return w
