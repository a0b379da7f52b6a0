"""Per-user train / validation / test splits and the matrices metrics need."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moo_search.errors import DataError
from moo_search.recommender.data._dataset import Dataset

__all__ = ["Split", "make_split"]


@dataclass
class Split:
    """Train/val/test interaction frames over one dataset's dense ids.

    Under the item-cold protocol (``data.split.cold_items``) some items are held out with
    every interaction they have: ``cold_val_items`` / ``cold_test_items`` are the new items
    of validation and test, and ``cold_val`` / ``cold_test`` their interactions. The warm
    frames (``train``, ``val``, ``test``) never hold a held-out item.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int
    threshold: float
    cold_val_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cold_test_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cold_val: pd.DataFrame | None = None
    cold_test: pd.DataFrame | None = None

    @property
    def has_cold_items(self) -> bool:
        return len(self.cold_val_items) + len(self.cold_test_items) > 0

    @property
    def cold_items(self) -> np.ndarray:
        """Every held-out item (validation's and test's), sorted."""
        return np.sort(np.concatenate([self.cold_val_items, self.cold_test_items]))

    @property
    def warm(self) -> np.ndarray:
        """(n_items,) bool: the items training may see (all of them without held-out items)."""
        mask = np.ones(self.n_items, dtype=bool)
        mask[self.cold_items] = False
        return mask

    def cold_part(self, name: str) -> tuple[np.ndarray, pd.DataFrame]:
        """(held-out items, their interactions) of part ``name`` ("val" or "test")."""
        if name not in ("val", "test"):
            raise ValueError(f"held-out items belong to 'val' or 'test', got {name!r}")
        items = self.cold_val_items if name == "val" else self.cold_test_items
        df = self.cold_val if name == "val" else self.cold_test
        return items, (df if df is not None else self.train.iloc[:0])

    def cold_matrix(self, name: str, *, relevant_only: bool = False) -> sp.csr_matrix:
        """(n_users, n_items) interactions with part ``name``'s held-out items."""
        return self._to_matrix(self.cold_part(name)[1], relevant_only)

    def part(self, name: str) -> pd.DataFrame:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def matrix(self, name: str, *, relevant_only: bool = False) -> sp.csr_matrix:
        return self._to_matrix(self.part(name), relevant_only)

    def _to_matrix(self, df: pd.DataFrame, relevant_only: bool) -> sp.csr_matrix:
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
        parts = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
        if self.has_cold_items:
            parts.update(
                cold_val_items=len(self.cold_val_items),
                cold_test_items=len(self.cold_test_items),
                cold_val=len(self.cold_part("val")[1]),
                cold_test=len(self.cold_part("test")[1]),
            )
        return parts


def hold_out_items(
    interactions: pd.DataFrame, n_items: int, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(validation's, test's) new items: ``share`` of the items that have an interaction,
    drawn by ``seed`` and dealt alternately to validation and test (ColdRec-style item-cold
    split: the held-out items leave training with all their interactions)."""
    if share <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    items = np.unique(interactions["item"].to_numpy())
    n = round(share * len(items))
    if n < 2 or n > len(items) - 2:
        raise DataError(
            f"data.split.cold_items: {share:g} of the {len(items)} items with interactions "
            f"holds out {n}; need at least 2 (one for validation, one for test) and at least "
            "2 left for training"
        )
    chosen = np.random.default_rng(seed).permutation(items)[:n]
    return np.sort(chosen[0::2]), np.sort(chosen[1::2])


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
    cold_items: float = 0.0,
    cold_seed: int = 0,
) -> Split:
    """Split every user's interactions.

    ``chronological``: by timestamp, ties broken by file order; ``random``: a seeded
    random order per user; ``leave_last``: the last ``n`` to test, the ``n`` before to val.
    With ``cold_items`` > 0 that share of the items is held out first (:func:`hold_out_items`,
    by ``cold_seed``) and the remaining (warm) interactions are split as above.
    """
    df = ds.interactions.reset_index(drop=True).copy()
    val_new, test_new = hold_out_items(df, ds.n_items, cold_items, cold_seed)
    cold_frames: list[pd.DataFrame | None] = [None, None]
    if len(val_new):
        for j, items in enumerate((val_new, test_new)):
            cold_frames[j] = df[df["item"].isin(items)].reset_index(drop=True)
        df = df[~df["item"].isin(np.concatenate([val_new, test_new]))].reset_index(drop=True)
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
    return Split(
        frames[0],
        frames[1],
        frames[2],
        ds.n_users,
        ds.n_items,
        threshold,
        cold_val_items=val_new,
        cold_test_items=test_new,
        cold_val=cold_frames[0],
        cold_test=cold_frames[1],
    )
