"""The metric definitions as pure functions over top-K lists (DESIGN.md, "Metrics"): ranking,
beyond-accuracy, CTR, and the paired bootstrap that compares two models user by user."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata


def topk(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first; ``exclude``d items never appear.
    Equal scores rank by item index (:func:`ranked_top`)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.nnz:
        rows, cols = exclude.nonzero()
        s[rows, cols] = -np.inf
    return ranked_top(s, k)


def ranked_top(s: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest entries of each row of ``s``, largest first, equal
    values by lower column index: one total order, so a row's top-k is the prefix of its
    top-m for any m >= k, and the same whichever way the row was partitioned."""
    n, width = s.shape
    k = min(k, width)
    if k <= 0 or n == 0:
        return np.zeros((n, max(k, 0)), dtype=np.int64)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(s, part, axis=1)
    kth = vals.min(1)
    split_tie = np.flatnonzero((s >= kth[:, None]).sum(1) > k)  # the cut falls inside a tie
    if len(split_tie):
        sub, cut = s[split_tie], kth[split_tie, None]
        above, equal = sub > cut, sub == cut
        need = k - above.sum(1, keepdims=True)
        take = above | (equal & (np.cumsum(equal, axis=1) <= need))
        part[split_tie] = np.nonzero(take)[1].reshape(-1, k)
        vals[split_tie] = np.take_along_axis(sub, part[split_tie], axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _hits(lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(users, lists.shape[1])
    return np.asarray(relevant[rows, lists.ravel()]).reshape(lists.shape) > 0


def ranking_per_user(
    lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, np.ndarray]:
    """precision/recall/ndcg/hit/mrr@k of each of ``users`` (rows of ``lists``): what pairs
    two models user by user (:func:`paired_bootstrap`).

    NDCG uses binary gains and a log2 discount; the ideal DCG places min(|R_u|, k) hits first.
    """
    lists = lists[:, :k]
    hits = _hits(lists, users, relevant)
    n_rel = np.asarray(relevant[users].sum(1)).ravel().astype(np.int64)
    n_hit = hits.sum(1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount[: lists.shape[1]]).sum(1)
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return {
        f"precision@{k}": n_hit / k,
        f"recall@{k}": n_hit / n_rel,
        f"ndcg@{k}": dcg / ideal,
        f"hit@{k}": (n_hit > 0).astype(np.float64),
        f"mrr@{k}": 1.0 / first,
    }


def ranking_metrics(
    lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, float]:
    """precision/recall/ndcg/hit/mrr@k, means over ``users`` (:func:`ranking_per_user`)."""
    return {
        name: float(np.mean(v)) for name, v in ranking_per_user(lists, users, relevant, k).items()
    }


def ild(lists: np.ndarray, features: np.ndarray) -> float:
    """Intra-list diversity: mean over pairs i<j of 1 - cos(g_i, g_j), then over users.

    Items with an all-zero feature vector have cosine 0 to everything.
    """
    k = lists.shape[1]
    if k < 2:
        return 0.0
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    g = np.divide(features, norm, out=np.zeros_like(features, dtype=np.float64), where=norm > 0)
    gl = g[lists]  # (U, K, d)
    sims = np.einsum("ukd,ujd->ukj", gl, gl)
    iu = np.triu_indices(k, 1)
    return float(np.mean(1.0 - sims[:, iu[0], iu[1]]))


def novelty(lists: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(pop_i) over the lists (Zhou et al., PNAS 2010).

    pop_i = share of train users who interacted with i; unseen items use 1/(n_users+1).
    """
    pop = np.where(item_users > 0, item_users / max(n_users, 1), 1.0 / (n_users + 1))
    return float(np.mean(-np.log2(pop[lists])))


def coverage(lists: np.ndarray, n_items: int) -> float:
    """Share of the catalog recommended to at least one user."""
    return float(len(np.unique(lists)) / n_items)


def head_items(item_counts: np.ndarray, share: float = 0.8) -> np.ndarray:
    """Boolean mask of the most popular items that make up ``share`` of train interactions."""
    order = np.argsort(-item_counts, kind="stable")
    cum = np.cumsum(item_counts[order]) / max(item_counts.sum(), 1)
    n_head = int(np.searchsorted(cum, share) + 1) if item_counts.sum() > 0 else 0
    mask = np.zeros(len(item_counts), dtype=bool)
    mask[order[:n_head]] = True
    return mask


def tail_share(lists: np.ndarray, head: np.ndarray) -> float:
    """Share of recommended slots filled by items outside the popular head."""
    return float(np.mean(~head[lists]))


def gini(lists: np.ndarray, n_items: int) -> float:
    """Gini coefficient of item exposure over the whole catalog (0 = equal exposure)."""
    x = np.sort(np.bincount(lists.ravel(), minlength=n_items).astype(np.float64))
    n = len(x)
    if x.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic, ties averaged; NaN with one class only."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
