"""Evaluate any scorer on a split with the project's metric definitions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from moo_search.errors import DataError
from moo_search.recommender.candidates import ScoreBook, book_depth, rank_cold
from moo_search.recommender.config import EvalConfig, RerankConfig
from moo_search.recommender.data import Dataset, Split
from moo_search.recommender.metrics import (
    cold_item_metrics,
    evaluate_mixed,
    evaluate_topk,
)

__all__ = [
    "Lists",
    "Metrics",
    "Scorer",
    "cold_item_eval",
    "cold_item_lists",
    "evaluate_lists",
    "evaluate_scorer",
]

Scorer = Callable[[np.ndarray], np.ndarray]
"""Maps user indices (n,) to scores over the full catalog (n, n_items)."""


Metrics = dict[str, dict[str, float]]
Lists = dict[str, tuple[np.ndarray, np.ndarray]]


def evaluate_scorer(
    score: Scorer,
    ds: Dataset | None,
    split: Split,
    *,
    eval_cfg: EvalConfig,
    rerank_cfg: RerankConfig | None = None,
    parts: tuple[str, ...] = ("val", "test"),
    features: np.ndarray | None = None,
    ks: tuple[int, ...] = (),
    only_users: np.ndarray | None = None,
) -> Metrics:
    """Metrics per split part, e.g. ``{"val": {...}, "test": {...}}``. ``only_users`` restricts
    the evaluated users to those of them that have a relevant item in the part (a fixed sample:
    cheap checkpoints)."""
    metrics, _ = evaluate_lists(
        score,
        ds,
        split,
        eval_cfg=eval_cfg,
        rerank_cfg=rerank_cfg,
        parts=parts,
        features=features,
        ks=ks,
        only_users=only_users,
    )
    return metrics


def evaluate_lists(
    score: Scorer,
    ds: Dataset | None,
    split: Split,
    *,
    eval_cfg: EvalConfig,
    rerank_cfg: RerankConfig | None = None,
    parts: tuple[str, ...] = ("val", "test"),
    features: np.ndarray | None = None,
    ks: tuple[int, ...] = (),
    only_users: np.ndarray | None = None,
    book: ScoreBook | None = None,
) -> tuple[Metrics, Lists]:
    """:func:`evaluate_scorer`'s metrics and ``{part: (evaluated users, their top-k lists)}``.
    The lists come from ``book`` (``score``'s :class:`ScoreBook`: pass one to rank the same
    scores again at other re-ranking knobs without scoring again), else from a book of this
    call's own."""
    all_k = sorted({eval_cfg.k, *ks})
    k = all_k[-1]
    if book is None:
        if features is None:
            if ds is None:
                raise ValueError("evaluate_scorer needs the dataset or the item features")
            features = ds.item_features()
        depth = book_depth(all_k, [rerank_cfg])
        book = ScoreBook(score, split, features, eval_cfg, depth=depth, only_users=only_users)
    results: dict[str, dict[str, float]] = {}
    all_lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # part -> (users, top-k lists)
    for part in parts:
        ctx, users = book.context(part, "warm"), book.users(part, "warm")
        if len(users) == 0:
            raise DataError(
                f"data: the {part} split has no user with a relevant item (rating >= "
                f"{split.threshold:g}), so its metrics are undefined; use more data, a lower "
                "data.relevance_threshold or other data.split ratios"
            )
        lists = book.lists(part, "warm", k, rerank_cfg)
        results[part] = {}
        for kk in all_k:
            results[part].update(evaluate_topk(lists, users, ctx, kk))
        all_lists[part] = (users, lists)
        if split.has_cold_items and part != "train":
            c_users, c_lists, relevant = book.cold_lists(part, k)
            for kk in all_k if len(c_users) else ():
                results[part].update(cold_item_metrics(c_lists, c_users, relevant, kk))
            mixed, m_users = book.context(part, "mixed"), book.users(part, "mixed")
            m_lists = book.lists(part, "mixed", k, rerank_cfg)
            for kk in all_k:
                results[part].update(evaluate_mixed(m_lists, m_users, mixed, kk))
    return results, all_lists


def cold_item_lists(
    score: Scorer, split: Split, part: str, k: int, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """(users, their top-``k`` of part ``part``'s held-out items, the relevance): each user
    with a relevant held-out item ranks only that part's held-out items (plain top-k; none of
    them can have been seen before the part)."""
    items, _ = split.cold_part(part)
    # ties (a model that cannot score new items gives them one value) fall in a random order
    # per user (the same for every model), not in item-id order, which often follows popularity
    relevant = split.cold_matrix(part, relevant_only=True)
    users = np.flatnonzero(np.asarray(relevant.sum(1)).ravel() > 0)
    tie_break = np.random.default_rng(0).random((len(users), len(items)))
    lists = np.empty((len(users), min(k, len(items))), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        rows = tie_break[start : start + len(batch)]
        lists[start : start + len(batch)] = rank_cold(score(batch)[:, items], items, rows, k)
    return users, lists, relevant


def cold_item_eval(
    score: Scorer, split: Split, part: str, ks: list[int], batch_size: int
) -> dict[str, float]:
    """The ``cold_item/`` metrics at each of ``ks`` (empty when no user has a relevant
    held-out item in the part)."""
    users, lists, relevant = cold_item_lists(score, split, part, max(ks), batch_size)
    out: dict[str, float] = {}
    if len(users):
        for kk in ks:
            out.update(cold_item_metrics(lists, users, relevant, kk))
    return out
