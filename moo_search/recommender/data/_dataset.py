"""The in-memory dataset every loader produces."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """Interactions with dense integer ids, plus item and user side tables.

    Attributes:
        name: Dataset name (for messages and fingerprints).
        interactions: Columns ``user``, ``item`` (0-based ints), ``rating`` (float),
            ``timestamp`` (int); row order is file order (used to break timestamp ties).
        items: One row per item index: ``title``, ``year`` (str, may be empty),
            ``genres`` (list of str).
        users: One row per user index: free attribute columns (may be empty).
        user_ids, item_ids: Original ids, indexed by the dense index.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    genres: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how it was built (`data info` prints it)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_features(self) -> np.ndarray:
        """Model-independent item features (multi-hot genres), shape (n_items, n_genres)."""
        index = {g: j for j, g in enumerate(self.genres)}
        feats = np.zeros((self.n_items, max(len(self.genres), 1)), dtype=np.float32)
        for i, gs in enumerate(self.items["genres"]):
            for g in gs:
                feats[i, index[g]] = 1.0
        return feats

    def fingerprint(self) -> str:
        """SHA-256 over the interactions (user, item, rating, timestamp) in order."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        cols = self.interactions[["user", "item", "rating", "timestamp"]]
        h.update(np.ascontiguousarray(cols.to_numpy(dtype=np.float64)).tobytes())
        return h.hexdigest()

    def info(self) -> dict[str, object]:
        r = self.interactions["rating"]
        dist = {f"{k:g}": int(v) for k, v in r.value_counts().sort_index().items()}
        n = len(self.interactions)
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "sparsity": 1.0 - n / max(self.n_users * self.n_items, 1),
            "rating_distribution": dist,
            "genres": len(self.genres),
        }
