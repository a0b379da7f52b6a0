"""The business tasks' baselines on new items (``cold_item/click_auc``, ``conversion_auc``,
``satisfaction_rmse``; pairs: :func:`~moo_search.recommender.model.tasks.cold_task_pairs`).

* **Counts**: the count baselines of :mod:`moo_search.recommender.baselines.tasks`, which fall
  back to global rates for an item without interactions: only the user's side varies.
* **TF-IDF**, **Frozen encoder**: the content baselines' score of the item for the user (the
  item's text similarity to the user's history, z-scored over the user's row) beside the
  user's counts, calibrated on validation's new items: a logistic fit on [z] for click, on
  [user like-rate logit, z] for conversion, a linear fit on [user offset prediction, z] for
  satisfaction. Test is predicted by the validation fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moo_search.recommender.baselines.ranking import BaselineContext, BaselineFailed
from moo_search.recommender.metrics import auc, logloss

__all__ = [
    "COLD_CONTENT",
    "add_cold_task_baselines",
    "cold_task_baselines",
    "cold_task_predictions",
    "study_cold_task_baselines",
]

COLD_CONTENT = ("TF-IDF", "Frozen encoder")
TASKS = ("click", "conversion", "satisfaction")


def _pairs(ctx: BaselineContext, part: str) -> dict[str, Any]:
    from moo_search.recommender.model.tasks import cold_task_pairs

    kw = {"negatives": ctx.eval_cfg.click_negatives, "seed": ctx.seed}
    return {t: cold_task_pairs(ctx.split, part, t, **kw) for t in TASKS}


def _user_side(ctx: BaselineContext, pairs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each task's count prediction (what the counts know of a new item: the user)."""
    from moo_search.recommender.model.ctr import like_rate_logits, split_like_rates
    from moo_search.recommender.model.tasks import split_rating_offsets

    rates = split_like_rates(ctx.split)
    shrink = ctx.tuned.get("Counts", {}).get("rating_shrink", 10.0)
    offsets = split_rating_offsets(ctx.split, shrink)
    conv, sat = pairs["conversion"], pairs["satisfaction"]
    return {
        # every new item has the same counts: the share of positives among the pairs
        "click": np.full(len(pairs["click"].y), -np.log(max(ctx.eval_cfg.click_negatives, 1))),
        "conversion": like_rate_logits(rates, conv.users, conv.items),
        "satisfaction": offsets.predict(sat.users, sat.items),
    }


def _content_z(scorer: Any, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Each pair's score z-scored over its user's row."""
    out = np.empty(len(users))
    uniq, inv = np.unique(users, return_inverse=True)
    for lo in range(0, len(uniq), 256):
        rows = np.asarray(scorer(uniq[lo : lo + 256]), dtype=np.float64)
        finite = np.where(np.isfinite(rows), rows, np.nan)
        z = (rows - np.nanmean(finite, 1, keepdims=True)) / (
            np.nanstd(finite, 1, keepdims=True) + 1e-12
        )
        sel = (inv >= lo) & (inv < lo + 256)
        out[sel] = z[inv[sel] - lo, items[sel]]
    return np.nan_to_num(out)


def _design(task: str, side: np.ndarray, z: np.ndarray) -> np.ndarray:
    return z[:, None] if task == "click" else np.stack([side, z], 1)


def _fit(task: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = np.concatenate([x, np.ones((len(x), 1))], 1)
    if task == "satisfaction":
        return np.linalg.lstsq(a, y, rcond=None)[0]
    w = np.zeros(a.shape[1])
    for _ in range(50):  # Newton's method, a tiny ridge for separable data
        p = 1 / (1 + np.exp(-(a @ w)))
        h = a.T @ (a * (p * (1 - p))[:, None]) + 1e-6 * np.eye(a.shape[1])
        step = np.linalg.solve(h, a.T @ (p - y))
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def _predict(task: str, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.concatenate([x, np.ones((len(x), 1))], 1) @ w
    return out if task == "satisfaction" else 1 / (1 + np.exp(-out))


def cold_task_predictions(
    ctx: BaselineContext, parts: tuple[str, ...] = ("test",)
) -> dict[str, dict[str, dict[str, tuple[Any, np.ndarray]]]]:
    """Per part, baseline and task: (pairs, prediction) on the part's new items. Counts as
    they are; each content baseline calibrated on validation's new items (a content baseline
    that fails is left out)."""
    val = _pairs(ctx, "val")
    val_side = _user_side(ctx, val)
    out: dict[str, dict[str, dict[str, tuple[Any, np.ndarray]]]] = {}
    for part in parts:
        pairs = val if part == "val" else _pairs(ctx, part)
        side = val_side if part == "val" else _user_side(ctx, pairs)
        sig = {t: side[t] if t == "satisfaction" else 1 / (1 + np.exp(-side[t])) for t in TASKS}
        out[part] = {"Counts": {t: (pairs[t], sig[t]) for t in TASKS}}
        for name in COLD_CONTENT:
            try:
                scorer = ctx.scorer(name)
            except BaselineFailed:
                continue
            preds = {}
            for t in TASKS:
                zv = _content_z(scorer, val[t].users, val[t].items)
                w = _fit(t, _design(t, val_side[t], zv), val[t].y)
                z = _content_z(scorer, pairs[t].users, pairs[t].items)
                preds[t] = (pairs[t], _predict(t, w, _design(t, side[t], z)))
            out[part][name] = preds
    return out


def cold_task_baselines(
    ctx: BaselineContext, parts: tuple[str, ...] = ("test",)
) -> dict[str, dict[str, dict[str, float]]]:
    """Per part and baseline, the ``cold_item/`` task metrics (:func:`cold_task_predictions`)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for part, per in cold_task_predictions(ctx, parts).items():
        for name, preds in per.items():
            (click, pc), (conv, pv), (sat, ps) = (preds[t] for t in TASKS)
            out.setdefault(part, {})[name] = {
                "cold_item/click_auc": auc(click.y, pc),
                "cold_item/click_logloss": logloss(click.y, pc),
                "cold_item/conversion_auc": auc(conv.y, pv),
                "cold_item/conversion_logloss": logloss(conv.y, pv),
                "cold_item/satisfaction_rmse": float(np.sqrt(np.mean((ps - sat.y) ** 2))),
            }
    return out


def study_cold_task_baselines(ctx: BaselineContext) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`cold_task_baselines` on validation and test, once per context (the study's
    baseline rows and its reference front read the same); ``{}`` when they fail (one
    warning names why). A content baseline is calibrated on validation's new items, so its
    validation figures are in-sample (a few weights fit on thousands of pairs); test is what
    compares."""
    if ctx.cold_tasks is None:
        try:
            ctx.cold_tasks = cold_task_baselines(ctx, ("val", "test"))
        except Exception as e:  # a content scorer, or a fit on too few pairs
            ctx.fail("new-item task baselines", e)
            ctx.cold_tasks = {}
    return dict(ctx.cold_tasks)


def add_cold_task_baselines(
    ctx: BaselineContext, out: dict[str, dict[str, dict[str, float]]]
) -> None:
    """The tasks on new items (``cold_item/click_auc`` ...) into a study's baseline rows
    (``out``: ``{baseline: {part: metrics}}``): the Counts row and the content baselines'
    rows (:func:`study_cold_task_baselines`)."""
    for part, per in study_cold_task_baselines(ctx).items():
        for name, metrics in per.items():
            out.setdefault(name, {}).setdefault(part, {}).update(metrics)
