"""Per-user train / validation / test splits and the matrices metrics need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moo_search.data._dataset import Dataset
from moo_search.errors import DataError

__all__ = ["Split", "make_split"]


@dataclass
class Split:
    """Train/val/test interaction frames over one dataset's dense ids."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int
    threshold: float

    def part(self, name: str) -> pd.DataFrame:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def matrix(self, name: str, *, relevant_only: bool = False) -> sp.csr_matrix:
        df = self.part(name)
        if relevant_only:
            df = df[df["rating"] >= self.threshold]
        data = np.ones(len(df), dtype=np.float32)
        m = sp.csr_matrix(
            (data, (df["user"].to_numpy(), df["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        m.data[:] = 1.0
        return m

    def seen_before(self, name: str) -> sp.csr_matrix:
        """Items a user interacted with before split ``name`` (never recommended there)."""
        if name == "train":
            return sp.csr_matrix((self.n_users, self.n_items), dtype=np.float32)
        m = self.matrix("train")
        if name == "test":
            m = m + self.matrix("val")
        m.data[:] = 1.0
        return m

    def train_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(interactions per user, users per item) in train."""
        m = self.matrix("train")
        return np.asarray(m.sum(1)).ravel(), np.asarray(m.sum(0)).ravel()

    def fingerprint_parts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _counts(n: np.ndarray, ratios: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    n_val = np.floor(n * ratios[1] + 0.5).astype(np.int64)
    n_test = np.floor(n * ratios[2] + 0.5).astype(np.int64)
    # every user keeps at least one train interaction when it has any
    over = np.maximum(n_val + n_test - (n - 1), 0)
    take_val = np.minimum(over, n_val)
    n_val -= take_val
    n_test -= over - take_val
    return n_val, n_test


def make_split(
    ds: Dataset,
    *,
    method: str = "chronological",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    n: int = 1,
    seed: int = 0,
    threshold: float = 4.0,
) -> Split:
    """Split every user's interactions.

    ``chronological``: by timestamp, ties broken by file order; ``random``: a seeded
    random order per user; ``leave_last``: the last ``n`` to test, the ``n`` before to val.
    """
    df = ds.interactions.reset_index(drop=True).copy()
    df["_order"] = np.arange(len(df))
    if method == "chronological" or method == "leave_last":
        df = df.sort_values(["user", "timestamp", "_order"], kind="stable")
    elif method == "random":
        rng = np.random.default_rng(seed)
        df["_key"] = rng.random(len(df))
        df = df.sort_values(["user", "_key"], kind="stable").drop(columns="_key")
    else:
        raise DataError(
            f"data.split.method: expected chronological, random or leave_last, got {method!r}"
        )
    pos = df.groupby("user", sort=False).cumcount().to_numpy()
    size = df.groupby("user", sort=False)["item"].transform("size").to_numpy()
    if method == "leave_last":
        n_val = np.where(size > 2 * n, n, np.maximum(size - 1, 0) // 2)
        n_test = np.where(size > 2 * n, n, np.maximum(size - 1, 0) - n_val)
    else:
        n_val, n_test = _counts(size, ratios)
    n_train = size - n_val - n_test
    part = np.where(pos < n_train, 0, np.where(pos < n_train + n_val, 1, 2))
    df = df.drop(columns="_order")
    frames = [df[part == k].reset_index(drop=True) for k in range(3)]
    return Split(frames[0], frames[1], frames[2], ds.n_users, ds.n_items, threshold)
