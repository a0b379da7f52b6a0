"""Evaluate any scorer on a split with the project's metric definitions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from moo_search.data import Dataset, Split
from moo_search.errors import DataError
from moo_search.metrics import EvalContext, evaluate_topk
from moo_search.model.inference import recommend_lists
from moo_search.spec import EvalConfig, RerankConfig

__all__ = ["Scorer", "evaluate_scorer"]

Scorer = Callable[[np.ndarray], np.ndarray]
"""Maps user indices (n,) to scores over the full catalog (n, n_items)."""


def evaluate_scorer(
    score: Scorer,
    ds: Dataset | None,
    split: Split,
    *,
    eval_cfg: EvalConfig,
    rerank_cfg: RerankConfig | None = None,
    parts: tuple[str, ...] = ("val", "test"),
    features: np.ndarray | None = None,
    return_lists: bool = False,
    ks: tuple[int, ...] = (),
    only_users: np.ndarray | None = None,
) -> (
    dict[str, dict[str, float]]
    | tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]
):
    """Metrics per split part, e.g. ``{"val": {...}, "test": {...}}``; with ``return_lists``
    also ``{part: (evaluated users, their top-k lists)}``. ``only_users`` restricts the evaluated
    users to those of them that have a relevant item in the part (a fixed sample: cheap
    checkpoints)."""
    if features is None:
        if ds is None:
            raise ValueError("evaluate_scorer needs the dataset or the item features")
        features = ds.item_features()
    _, item_counts = split.train_counts()
    results: dict[str, dict[str, float]] = {}
    all_lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # part -> (users, top-k lists)
    all_k = sorted({eval_cfg.k, *ks})
    k = all_k[-1]
    for part in parts:
        ctx = EvalContext.from_split(
            split,
            part,
            features,
            cold_user_max=eval_cfg.cold_user_max,
            head_share=eval_cfg.head_share,
        )
        users = ctx.users if only_users is None else np.intersect1d(ctx.users, only_users)
        if len(users) == 0:
            raise DataError(
                f"data: the {part} split has no user with a relevant item (rating >= "
                f"{split.threshold:g}), so its metrics are undefined; use more data, a lower "
                "data.relevance_threshold or other data.split ratios"
            )
        lists = np.empty((len(users), k), dtype=np.int64)
        for start in range(0, len(users), eval_cfg.batch_size):
            batch = users[start : start + eval_cfg.batch_size]
            lists[start : start + len(batch)] = recommend_lists(
                score(batch),
                k,
                exclude=ctx.exclude[batch],
                rerank_cfg=rerank_cfg,
                features=features,
                item_counts=item_counts,
            )
        results[part] = {}
        for kk in all_k:
            results[part].update(evaluate_topk(lists, users, ctx, kk))
        all_lists[part] = (users, lists)
    return (results, all_lists) if return_lists else results
