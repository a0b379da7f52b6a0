"""The per-user z-score that puts the text and collaborative scores on one scale (fusion) and
scores new items against the warm catalog's mean and deviation."""

from __future__ import annotations

from typing import Any

__all__ = ["GramZ", "row_stats", "standardise"]


def standardise(x: Any, warm: Any = None) -> Any:
    """Per-row z-score of a tensor over the last axis (the catalog), with the mean and
    deviation of the ``warm`` columns where given (so a new item's score never depends on
    other new items); constant rows become 0."""
    mean, std = row_stats(x, warm, keepdim=True)
    return (x - mean) / std.clamp_min(1e-6)


def row_stats(x: Any, warm: Any = None, keepdim: bool = False) -> tuple[Any, Any]:
    """Each row's mean and (population) deviation over the ``warm`` columns (all if None)."""
    ref = x if warm is None else x[..., warm]
    return ref.mean(-1, keepdim=keepdim), ref.std(-1, keepdim=keepdim, unbiased=False)


class GramZ:
    """``standardise(U @ E.T, warm)`` at (user, item) pairs without the catalog rows: a row's
    mean is u . mean(E_warm) and its variance u^T (E_warm^T E_warm / n) u - mean^2, exact in
    float64 from the d x d Gram matrix, computed once for the item embeddings ``emb``. For a
    catalog whose users x items rows are too many to score (equal to the rows' z-scores up to
    float rounding)."""

    def __init__(self, emb: Any, warm: Any = None) -> None:
        e = emb.double()
        ref = e if warm is None else e[warm.to(e.device)]
        self.emb = e
        self.mean = ref.mean(0)
        self.gram = ref.T @ ref / max(len(ref), 1)

    def at(self, user_vectors: Any, items: Any) -> Any:
        """z-scores (float32) of the pairs (user_vectors[b], items[b])."""
        u = user_vectors.double()
        mean = u @ self.mean
        var = ((u @ self.gram) * u).sum(-1) - mean * mean
        value = (u * self.emb[items]).sum(-1)
        return ((value - mean) / var.clamp_min(0.0).sqrt().clamp_min(1e-6)).float()
