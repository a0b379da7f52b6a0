"""The count baselines of the business tasks (:mod:`moo_search.recommender.model.tasks`), and a ranking
baseline's scores as a click model."""

from __future__ import annotations

from typing import Any

import numpy as np

from moo_search.recommender.baselines.ranking import COUNT_BASELINE, BaselineContext
from moo_search.recommender.evaluate import Scorer
from moo_search.recommender.metrics import auc, logloss

__all__ = ["count_task_baselines", "count_task_predictions", "score_click_auc"]


def score_click_auc(scorer: Scorer, ctx: BaselineContext, part: str) -> float:
    """ROC AUC of a scorer's raw scores on ``part``'s click pairs (interactions against the
    seeded non-interacted items every trial is judged on)."""
    from moo_search.recommender.model.tasks import task_pairs

    pairs = task_pairs(
        ctx.split, part, "click", negatives=ctx.eval_cfg.click_negatives, seed=ctx.seed
    )
    users, inv = np.unique(pairs.users, return_inverse=True)
    scores = np.empty(len(pairs.users), dtype=np.float64)
    for start in range(0, len(users), 256):
        rows = scorer(users[start : start + 256])
        sel = (inv >= start) & (inv < start + 256)
        scores[sel] = rows[inv[sel] - start, pairs.items[sel]]
    return auc(pairs.y, scores)


def count_task_predictions(
    ctx: BaselineContext, parts: tuple[str, ...] = ("val", "test")
) -> dict[str, dict[str, tuple[Any, np.ndarray]]]:
    """Per part and task, the pairs (:class:`~moo_search.recommender.model.tasks.TaskPairs`) and the
    count baseline's prediction for each: click from item popularity (a logistic fit of its
    log on train click pairs), conversion from the smoothed like-rates, satisfaction from the
    global mean and shrunk user and item rating offsets (the shrinkage chosen on
    validation, recorded in ``ctx.tuned``)."""
    from moo_search.recommender.model.ctr import like_rate_logits, split_like_rates
    from moo_search.recommender.model.tasks import (
        RATING_SHRINK_GRID,
        split_rating_offsets,
        task_pairs,
    )

    split, kw = ctx.split, {"negatives": ctx.eval_cfg.click_negatives, "seed": ctx.seed}
    counts = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items)
    logpop = np.log((counts + 1.0) / (split.n_users + 1.0))
    train = task_pairs(split, "train", "click", **kw)
    a, b = _logistic_1d(logpop[train.items], train.y)
    rates = split_like_rates(split)
    fits = {s: split_rating_offsets(split, s) for s in RATING_SHRINK_GRID}
    val = task_pairs(split, "val", "satisfaction")
    best = min(fits, key=lambda s: _rmse(fits[s].predict(val.users, val.items), val.y))
    ctx.tuned[COUNT_BASELINE] = {"rating_shrink": best}
    out: dict[str, dict[str, tuple[Any, np.ndarray]]] = {}
    for part in parts:
        if not len(split.part(part)):
            continue
        click = task_pairs(split, part, "click", **kw)
        conv = task_pairs(split, part, "conversion")
        sat = task_pairs(split, part, "satisfaction")
        out[part] = {
            "click": (click, 1.0 / (1.0 + np.exp(-(a * logpop[click.items] + b)))),
            "conversion": (
                conv,
                1.0 / (1.0 + np.exp(-like_rate_logits(rates, conv.users, conv.items))),
            ),
            "satisfaction": (sat, fits[best].predict(sat.users, sat.items)),
        }
    return out


def count_task_baselines(ctx: BaselineContext) -> dict[str, dict[str, float]]:
    """The count baseline of each business task (:func:`count_task_predictions`) as one row
    of metrics per part (conversion also under its old ``ctr_*`` names)."""
    out: dict[str, dict[str, float]] = {}
    for part, preds in count_task_predictions(ctx).items():
        (click, pc), (conv, pv), (sat, ps) = (
            preds["click"],
            preds["conversion"],
            preds["satisfaction"],
        )
        ca, cl = auc(conv.y, pv), logloss(conv.y, pv)
        out[part] = {
            "click_auc": auc(click.y, pc),
            "click_logloss": logloss(click.y, pc),
            "conversion_auc": ca,
            "conversion_logloss": cl,
            "ctr_auc": ca,
            "ctr_logloss": cl,
            "satisfaction_rmse": _rmse(ps, sat.y),
        }
    return out


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def _logistic_1d(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Slope and intercept of a one-feature logistic regression (Newton's method)."""
    a, b = 0.0, float(np.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6)))
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)
