"""The task heads on (user, item) pairs: their features from a scored catalog, their fit on
validation pairs (out of fold for validation's own metrics), and their metrics on a part (the tasks and labels are defined in
:mod:`moo_search.recommender.model.tasks`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from moo_search.recommender.data import Split
from moo_search.recommender.inference import CatalogScorer
from moo_search.recommender.metrics import auc, logloss
from moo_search.recommender.model.tasks import TASK_FEATURES, task_pairs

__all__ = ["TaskFeatures", "fit_task_heads", "pair_features", "task_metrics", "task_predictions"]

HEAD_FOLDS = 2  # validation users' folds for the heads' out-of-fold validation predictions
TASKS = ("click", "conversion", "satisfaction")


def pair_features(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    *,
    loo: dict[str, np.ndarray] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Task features of (user, item) pairs (:data:`TASK_FEATURES`); per-user z-scores over the
    full catalog; ``loo``: leave-one-out like-rates and rating offsets per pair (train)."""
    from moo_search.recommender.zscore import standardise

    model, device = scorer.model, scorer.device
    # pairs are taken a group of users at a time, each user's catalog row scored once (the
    # rows are what the z-scores need); a group's rows stay near 2^26 entries on a large
    # catalog. Per-pair values depend on neither the grouping nor the order.
    n_items = int(model.logpop.shape[0])
    per_group = max(1, min(chunk, 2**26 // max(n_items, 1)))
    order = np.argsort(users, kind="stable")
    _, starts = np.unique(users[order], return_index=True)
    bounds = [*starts[::per_group].tolist(), len(users)]
    warm = None if model.warm is None else model.warm.to(device)
    out = []
    with torch.no_grad():
        for lo, hi in itertools.pairwise(bounds):
            part = order[lo:hi]
            uu = torch.as_tensor(users[part], device=device)
            ii = torch.as_tensor(items[part], device=device)
            uniq, inv = torch.unique(uu, return_inverse=True)
            r_z = standardise(model.collaborative(uniq).float(), warm)[inv, ii]
            s_z = None
            if scorer.user_emb is not None:
                s_z = standardise(scorer.semantic(scorer.user_emb[uniq]), warm)[inv, ii]
            kw = {
                k: torch.as_tensor(np.asarray(v, dtype=np.float32)[part], device=device)
                for k, v in (loo or {}).items()
                if v is not None
            }
            out.append(model.task_features(uu, ii, r_z, s_z, **kw))
    if not out:
        return torch.zeros(0, len(TASK_FEATURES), device=device)
    feats = torch.cat(out)
    back = torch.empty_like(feats)
    back[torch.as_tensor(order, device=device)] = feats  # the pairs' own order
    return back


def _head(model: Any, task: str) -> tuple[torch.nn.Linear, slice]:
    """The linear output of ``task`` and the task features it reads."""
    if task == "conversion":
        return model.ctr.linear, slice(0, model.ctr.linear.in_features)
    return (model.tasks.click if task == "click" else model.tasks.satisfaction), slice(None)


def _fit(head: torch.nn.Linear, task: str, x: torch.Tensor, y: torch.Tensor) -> float:
    from moo_search.recommender.train.ctr import fit_logistic, fit_ridge

    return fit_ridge(head, x, y) if task == "satisfaction" else fit_logistic(head, x, y)


def _apply(head: torch.nn.Linear, task: str, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = head(x.to(head.weight.dtype)).squeeze(-1)
        out = out if task == "satisfaction" else torch.sigmoid(out)
    return out.float().cpu().numpy().astype(np.float64)


def _folds(users: np.ndarray, seed: int) -> np.ndarray:
    """Each pair's fold, by its user (a user's pairs stay together), seeded."""
    uniq, inv = np.unique(users, return_inverse=True)
    fold_of = np.random.default_rng([seed, 7]).permutation(len(uniq)) % HEAD_FOLDS
    return np.asarray(fold_of[inv])


class TaskFeatures:
    """Each part's task pairs and their features (all columns), every task of ``tasks`` from
    one pass over the part's users: a user's catalog row is scored once for all of them
    (:func:`pair_features`: a pair's features depend on neither its group nor its order).
    The heads' fit and the metrics of a part read the same features."""

    def __init__(
        self,
        scorer: CatalogScorer,
        split: Split,
        *,
        negatives: int,
        seed: int,
        tasks: tuple[str, ...] = TASKS,
    ) -> None:
        self.scorer, self.split, self.tasks = scorer, split, tasks
        self.negatives, self.seed = negatives, seed
        self._parts: dict[str, dict[str, tuple[Any, torch.Tensor]]] = {}

    def get(self, part: str, task: str) -> tuple[Any, torch.Tensor]:
        """(pairs, features) of ``task`` on ``part``."""
        if part not in self._parts:
            kw = {"negatives": self.negatives, "seed": self.seed}
            pairs = {t: task_pairs(self.split, part, t, **kw) for t in self.tasks}
            x = pair_features(
                self.scorer,
                np.concatenate([p.users for p in pairs.values()]),
                np.concatenate([p.items for p in pairs.values()]),
            )
            bounds = np.cumsum([0, *(len(p.users) for p in pairs.values())])
            self._parts[part] = {
                t: (p, x[lo:hi]) for (t, p), lo, hi in zip(pairs.items(), bounds, bounds[1:])
            }
        return self._parts[part][task]


def _pairs_x(
    features: TaskFeatures, part: str, task: str
) -> tuple[Any, torch.Tensor, slice, torch.nn.Linear]:
    pairs, x = features.get(part, task)
    head, cols = _head(features.scorer.model, task)
    return pairs, x[:, cols], cols, head


def _features(
    scorer: CatalogScorer,
    split: Split,
    negatives: int,
    seed: int,
    given: TaskFeatures | None,
    tasks: tuple[str, ...] = TASKS,
) -> TaskFeatures:
    if given is not None:
        return given
    return TaskFeatures(scorer, split, negatives=negatives, seed=seed, tasks=tasks)


def fit_task_heads(
    scorer: CatalogScorer,
    split: Split,
    *,
    negatives: int,
    seed: int,
    features: TaskFeatures | None = None,
) -> dict[str, float]:
    """Fit each task's head on all validation pairs of its task, on frozen features (from
    its count-baseline start); their fit losses. Validation, not train: a train pair's
    backbone score is in-sample (EASE was fit on it) while a test pair's is not, and a click
    head fit on train learns that gap. Validation's own metrics come out of fold
    (:func:`task_predictions`). ``features``: the scorer's :class:`TaskFeatures`, shared with
    the metrics."""
    out: dict[str, float] = {}
    feats = _features(scorer, split, negatives, seed, features)
    for task in TASKS:
        pairs, x, _, head = _pairs_x(feats, "val", task)
        if len(pairs.y):
            y = torch.as_tensor(pairs.y, dtype=torch.float32, device=scorer.device)
            out[f"{task}_fit_loss"] = _fit(head, task, x, y)
    return out


def task_predictions(
    scorer: CatalogScorer,
    split: Split,
    part: str,
    task: str,
    *,
    negatives: int,
    seed: int,
    features: TaskFeatures | None = None,
) -> tuple[Any, np.ndarray]:
    """(pairs, predictions) of ``task`` on ``part``: p(click), p(like) or the rating. On
    validation each user's pairs are predicted by a head fit on the other users' pairs
    (cross-fitting, out of fold); elsewhere by the model's head (:func:`fit_task_heads`)."""
    import copy

    feats = _features(scorer, split, negatives, seed, features, (task,))
    pairs, x, _, head = _pairs_x(feats, part, task)
    if part != "val" or not len(pairs.y):
        return pairs, _apply(head, task, x)
    folds = _folds(pairs.users, seed)
    pred = np.empty(len(pairs.y))
    y = torch.as_tensor(pairs.y, dtype=torch.float32, device=scorer.device)
    for f in range(HEAD_FOLDS):
        held = torch.as_tensor(folds == f, device=scorer.device)
        fold_head = copy.deepcopy(head)
        _fit(fold_head, task, x[~held], y[~held])
        pred[folds == f] = _apply(fold_head, task, x[held])
    return pairs, pred


def task_metrics(
    scorer: CatalogScorer,
    split: Split,
    part: str,
    *,
    negatives: int,
    seed: int,
    features: TaskFeatures | None = None,
) -> dict[str, float]:
    """Every task's metrics on ``part``: click AUC and log loss, conversion AUC and log loss
    (and their old ``ctr_*`` names), satisfaction RMSE."""
    out: dict[str, float] = {}
    feats = _features(scorer, split, negatives, seed, features)
    kw: dict[str, Any] = {"negatives": negatives, "seed": seed, "features": feats}
    conv, p = task_predictions(scorer, split, part, "conversion", **kw)
    if not len(conv.y):
        return out
    a, ll = auc(conv.y, p), logloss(conv.y, p)
    out.update({"conversion_auc": a, "conversion_logloss": ll, "ctr_auc": a, "ctr_logloss": ll})
    sat, r = task_predictions(scorer, split, part, "satisfaction", **kw)
    out["satisfaction_rmse"] = float(np.sqrt(np.mean((r - sat.y) ** 2)))
    click, c = task_predictions(scorer, split, part, "click", **kw)
    out["click_auc"], out["click_logloss"] = auc(click.y, c), logloss(click.y, c)
    return out
