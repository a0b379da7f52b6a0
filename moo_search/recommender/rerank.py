"""Inference-time re-ranking: popularity penalty and MMR, vectorized over users."""

from __future__ import annotations

import numpy as np

from moo_search.recommender.metrics import ranked_top

__all__ = ["mmr", "pop_term", "relevance", "rerank", "scaled"]


def _minmax(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    lo = np.where(finite, scores, np.inf).min(1, keepdims=True)
    hi = np.where(finite, scores, -np.inf).max(1, keepdims=True)
    return scaled(scores, lo, hi)


def scaled(scores: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``scores`` min-max scaled by each row's ``lo`` and ``hi`` (its smallest and largest
    finite score, (n, 1)); -inf where a score is not finite. Elementwise, so a subset of a
    row's scores scales to the very values the whole row does."""
    span = np.where(hi > lo, hi - lo, 1.0)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(scores), (scores - lo) / span, -np.inf)


def pop_term(logpop: np.ndarray, pop_penalty: float, top: float) -> np.ndarray:
    """What the popularity penalty takes off an item's relevance: ``pop_penalty`` times its
    log-popularity over the catalog's largest (``top``); increasing in ``logpop``."""
    return pop_penalty * logpop / max(top, 1e-12)


def relevance(scores: np.ndarray, item_counts: np.ndarray, pop_penalty: float) -> np.ndarray:
    """The re-rankers' relevance of every item: the per-user min-max normalised score less
    the popularity penalty (:func:`pop_term`)."""
    rel = _minmax(scores)
    if pop_penalty > 0:
        logpop = np.log1p(item_counts.astype(np.float64))
        rel = rel - pop_term(logpop, pop_penalty, float(logpop.max()))
    return rel


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
    ``candidates`` most relevant items (equal relevance: lower item index first), argmax
    ``lambda * rel - (1 - lambda) * max_sim`` to the items already chosen, with cosine
    similarity of the item ``features``. ``scores`` must hold ``-inf`` for excluded items.
    """
    rel = relevance(scores, item_counts, pop_penalty)
    c = min(max(candidates, k), rel.shape[1])
    cand = ranked_top(rel, c)
    return mmr(cand, np.take_along_axis(rel, cand, axis=1), k, features, mmr_lambda)


def mmr(
    cand: np.ndarray, crel: np.ndarray, k: int, features: np.ndarray, mmr_lambda: float
) -> np.ndarray:
    """Top-``k`` lists by MMR from each user's candidates ``cand`` (most relevant first) and
    their relevance ``crel``; at ``mmr_lambda`` >= 1 the first ``k`` candidates."""
    if mmr_lambda >= 1.0:
        return cand[:, :k]
    n_users, c = cand.shape
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    g = np.divide(features, norm, out=np.zeros_like(features, dtype=np.float64), where=norm > 0)
    gc = g[cand]  # (U, C, d)
    max_sim = np.zeros((n_users, c))
    chosen = np.zeros((n_users, c), dtype=bool)
    rows = np.arange(n_users)
    out = np.empty((n_users, min(k, c)), dtype=np.int64)
    finite_rel = np.where(np.isfinite(crel), crel, -1e9)
    for t in range(out.shape[1]):
        score = mmr_lambda * finite_rel - (1 - mmr_lambda) * max_sim
        score[chosen] = -np.inf
        pick = score.argmax(1)
        chosen[rows, pick] = True
        out[:, t] = cand[rows, pick]
        sim = np.einsum("ucd,ud->uc", gc, gc[rows, pick])
        max_sim = np.maximum(max_sim, sim)
    return out
