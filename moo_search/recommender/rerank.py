"""Inference-time re-ranking: popularity penalty and MMR, vectorized over users."""

from __future__ import annotations

import numpy as np

__all__ = ["rerank"]


def _minmax(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    lo = np.where(finite, scores, np.inf).min(1, keepdims=True)
    hi = np.where(finite, scores, -np.inf).max(1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(finite, (scores - lo) / span, -np.inf)


def rerank(
    scores: np.ndarray,
    k: int,
    *,
    features: np.ndarray,
    item_counts: np.ndarray,
    mmr_lambda: float = 1.0,
    pop_penalty: float = 0.0,
    candidates: int = 100,
) -> np.ndarray:
    """Top-``k`` lists after a popularity penalty and Maximal Marginal Relevance.

    Relevance is the per-user min-max normalised score minus ``pop_penalty`` times the
    normalised log-popularity; MMR (Carbonell & Goldstein, SIGIR 1998) then picks, among the
    ``candidates`` most relevant items, argmax ``lambda * rel - (1 - lambda) * max_sim`` to the
    items already chosen, with cosine similarity of the item ``features``.
    ``scores`` must hold ``-inf`` for excluded items.
    """
    rel = _minmax(scores)
    if pop_penalty > 0:
        logpop = np.log1p(item_counts.astype(np.float64))
        rel = rel - pop_penalty * logpop / max(logpop.max(), 1e-12)
    n_users, n_items = rel.shape
    c = min(max(candidates, k), n_items)
    cand = np.argpartition(-rel, c - 1, axis=1)[:, :c]
    crel = np.take_along_axis(rel, cand, axis=1)
    order = np.argsort(-crel, axis=1, kind="stable")
    cand, crel = np.take_along_axis(cand, order, 1), np.take_along_axis(crel, order, 1)
    if mmr_lambda >= 1.0:
        return cand[:, :k]
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    g = np.divide(features, norm, out=np.zeros_like(features, dtype=np.float64), where=norm > 0)
    gc = g[cand]  # (U, C, d)
    max_sim = np.zeros((n_users, c))
    chosen = np.zeros((n_users, c), dtype=bool)
    rows = np.arange(n_users)
    out = np.empty((n_users, min(k, c)), dtype=np.int64)
    finite_rel = np.where(np.isfinite(crel), crel, -1e9)
    for t in range(out.shape[1]):
        mmr = mmr_lambda * finite_rel - (1 - mmr_lambda) * max_sim
        mmr[chosen] = -np.inf
        pick = mmr.argmax(1)
        chosen[rows, pick] = True
        out[:, t] = cand[rows, pick]
        sim = np.einsum("ucd,ud->uc", gc, gc[rows, pick])
        max_sim = np.maximum(max_sim, sim)
    return out
