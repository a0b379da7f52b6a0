"""The collaborative tower: one interface for every backbone, so the recommender has no
backbone branches.

A tower is an ``nn.Module`` with

- ``forward(users, items=None)``: raw scores, full catalog rows ``(B, I)`` or one score per
  (user, item) pair ``(B,)``;
- ``from_history(item indices) -> (I,)``: a new user's scores from the items they had;
- ``learned``: whether its parameters train with the adapter (a closed form's do not);
- ``matrix()``: the item-item W a closed form scores with (None for a learned one).

:class:`ClosedFormTower` serves every fitted backbone (EASE, ItemKNN, SANSA, a plugin's
``fit``); :class:`IDEmbeddings` is the learned ``mf`` backbone. A plugin's ``Backbone.tower``
builds its own module with ``forward`` and ``from_history``; ``learned`` defaults to True.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from moo_search.spec._errors import Strict

__all__ = ["ClosedFormTower", "IDEmbeddings", "MFParams", "is_learned", "tower_matrix"]

STATS_BATCH = 1024
"""Users whose full backbone rows are scored at a time for their z-score statistics."""


class MFParams(Strict):
    """The ``mf`` backbone's knobs (``fusion.cf_params``)."""

    dim: int = Field(64, ge=1, description="Size of the user and item ID embeddings.")


class IDEmbeddings(nn.Module):
    """Learned ID embeddings: r(u, i) = <p_u, q_i> + b_i, trained with the adapter."""

    learned = True

    def __init__(self, n_users: int, n_items: int, params: MFParams | None = None) -> None:
        super().__init__()
        dim = (params or MFParams()).dim
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.user_emb.weight, std=0.05)
        nn.init.normal_(self.item_emb.weight, std=0.05)

    def forward(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        pu = self.user_emb(users)
        if items is None:
            return pu @ self.item_emb.weight.T + self.item_bias
        return (pu * self.item_emb(items)).sum(-1) + self.item_bias[items]

    def from_history(self, history: torch.Tensor) -> torch.Tensor:
        q = self.item_emb.weight
        pu = q[history].mean(0) if len(history) else torch.zeros(q.shape[1], device=q.device)
        return pu @ q.T + self.item_bias


class ClosedFormTower(nn.Module):
    """A fitted backbone's scores x_u W: from the users' kept score table (``scores``) or, for
    a large catalog where that table is not kept, from their train rows (``rows``). W is dense
    (an array, a buffer) or sparse (:class:`SparseWeights`). Nothing here is in the state
    dict: the backbone is the study's (cached once, hashed in the trial record), not each
    trial's, and an export ships it once."""

    learned = False

    def __init__(self, weights: Any, scores: np.ndarray | None, rows: Any) -> None:
        super().__init__()
        if scores is None and rows is None:
            raise ValueError(
                "a closed-form backbone needs its user scores or the train matrix to "
                "compute them from"
            )
        self.sparse: Any = None if isinstance(weights, np.ndarray) else weights
        if self.sparse is None:
            w = torch.as_tensor(weights, dtype=torch.float32)
            self.register_buffer("weights", w, persistent=False)
        self.rows: Any = None if scores is not None else rows.tocsr()
        if scores is not None:
            table = torch.as_tensor(scores, dtype=torch.float32)
            self.register_buffer("scores", table, persistent=False)

    def forward(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        if self.rows is not None:  # no kept table: x_u W for these users
            from moo_search.recommender.model.sparse_weights import user_scores

            got = user_scores(self.rows[users.detach().cpu().numpy()], self.matrix())
            rows = torch.as_tensor(got, device=users.device)
            return rows if items is None else rows[torch.arange(len(users)), items]
        table: torch.Tensor = self.scores  # type: ignore[assignment]  # a buffer
        return table[users] if items is None else table[users, items]

    def pair_z(
        self, users: torch.Tensor, items: torch.Tensor, warm: torch.Tensor | None
    ) -> torch.Tensor | None:
        """``standardise(forward(users), warm)`` at the pairs (users[b], items[b]) without the
        pairs' catalog rows, where the table is not kept (a large catalog): each user's mean
        and deviation over the warm items from its row, scored once in this tower's life
        (the backbone is fixed), and each pair's own score. Equal to the rows' z-scores up to
        float rounding. None where the table is kept: its rows cost a lookup."""
        if self.rows is None:
            return None
        from moo_search.recommender.model.sparse_weights import SparseWeights

        u = users.detach().cpu().numpy()
        i = items.detach().cpu().numpy()
        mean, std = self._row_stats(u, warm)
        x, w = self.rows[u], self.matrix()
        if isinstance(w, SparseWeights):
            vals = w.pair_scores(x, i)
        else:
            vals = np.asarray(x.multiply(np.asarray(w[:, i], np.float32).T).sum(1)).ravel()
        z = (vals.astype(np.float32) - mean) / np.maximum(std, np.float32(1e-6))
        return torch.as_tensor(z, dtype=torch.float32, device=users.device)

    def _row_stats(
        self, users: np.ndarray, warm: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's row mean and deviation over the warm items (float32), remembered."""
        from moo_search.recommender.model.sparse_weights import user_scores
        from moo_search.recommender.zscore import row_stats

        key = None if warm is None else int(warm.sum())
        if getattr(self, "_stats_key", "unset") != key:  # the warm items changed: start over
            self._stats = np.full((self.rows.shape[0], 2), np.nan, dtype=np.float32)
            self._stats_key = key
        todo = np.unique(users[np.isnan(self._stats[users, 0])])
        for lo in range(0, len(todo), STATS_BATCH):
            batch = todo[lo : lo + STATS_BATCH]
            rows = torch.as_tensor(user_scores(self.rows[batch], self.matrix()))
            mean, std = row_stats(rows, None if warm is None else warm.cpu())
            self._stats[batch, 0], self._stats[batch, 1] = mean.numpy(), std.numpy()
        return self._stats[users, 0], self._stats[users, 1]

    def from_history(self, history: torch.Tensor) -> torch.Tensor:
        if self.sparse is None:
            w: torch.Tensor = self.weights  # type: ignore[assignment]  # a buffer
            return w[history].sum(0)
        import scipy.sparse as sp

        from moo_search.recommender.model.sparse_weights import user_scores

        h = history.cpu().numpy()
        n = self.sparse.shape[0]
        x = sp.csr_matrix((np.ones(len(h)), (np.zeros(len(h), dtype=np.int64), h)), (1, n))
        return torch.as_tensor(user_scores(x, self.sparse)[0])

    def matrix(self) -> Any:
        """W: a numpy array or :class:`SparseWeights`."""
        if self.sparse is not None:
            return self.sparse
        return self.weights.detach().cpu().numpy()  # type: ignore[operator]


def is_learned(tower: nn.Module) -> bool:
    """Whether the tower trains with the adapter (a plugin's module: yes, unless it says)."""
    return bool(getattr(tower, "learned", True))


def tower_matrix(tower: nn.Module) -> Any:
    """The closed form's W; None for a learned tower."""
    matrix = getattr(tower, "matrix", None)
    return matrix() if callable(matrix) and not is_learned(tower) else None
