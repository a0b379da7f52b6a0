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
from moo_search.recommender.model.task_towers import TASKS
from moo_search.recommender.model.tasks import TASK_FEATURES, task_pairs

__all__ = [
    "TaskFeatures",
    "fit_task_heads",
    "leave_one_out",
    "pair_deep",
    "pair_features",
    "task_metrics",
    "task_predictions",
]

HEAD_FOLDS = 2  # validation users' folds for the heads' out-of-fold validation predictions


def pair_features(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    *,
    loo: dict[str, np.ndarray] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Task features of (user, item) pairs (:data:`TASK_FEATURES`); per-user z-scores over the
    warm catalog; ``loo``: leave-one-out like-rates and rating offsets per pair (train). A new
    item's collaborative feature is the score the trial ranks it by (``fusion.new_items``:
    the backbone knows nothing of it); its count features are those of an unseen item."""
    from moo_search.recommender.zscore import GramZ, standardise

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
    # a large catalog's rows are not scored for the z-scores: each user's statistics and the
    # pairs' own scores are (ClosedFormTower.pair_z, GramZ); equal up to float rounding
    gram = None
    if model.pairwise_z and scorer.item_emb is not None:
        gram = GramZ(scorer.item_emb, warm)
    out = []
    with torch.no_grad():
        for lo, hi in itertools.pairwise(bounds):
            part = order[lo:hi]
            uu = torch.as_tensor(users[part], device=device)
            ii = torch.as_tensor(items[part], device=device)
            uniq, inv = torch.unique(uu, return_inverse=True)
            r_z = model.collaborative_pair_z(uu, ii)
            if r_z is None:
                r_z = standardise(model.collaborative(uniq).float(), warm)[inv, ii]
            if warm is not None and not bool(warm[ii].all()):
                new = ~warm[ii]
                fused = torch.as_tensor(scorer(uniq.cpu().numpy()), device=device)
                r_z = torch.where(new, fused[inv, ii].float(), r_z)
            s_z = None
            if gram is not None and scorer.user_emb is not None:
                s_z = gram.at(scorer.user_emb[uu], ii)
            elif scorer.user_emb is not None:
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


def leave_one_out(
    data: Any, users: np.ndarray, items: np.ndarray, clicks: np.ndarray
) -> dict[str, np.ndarray]:
    """Each train pair's like-rates and rating offsets with the pair itself left out (what
    the task terms read in training: a test pair's counts do not hold its own label)."""
    from moo_search.recommender.model.tasks import split_rating_offsets

    ratings = data.split.train["rating"].to_numpy().astype(np.float64)
    like_user, like_item = data.like_rates.pair_logits(users, items, clicks)
    off_user, off_item = split_rating_offsets(data.split).pair_offsets(users, items, ratings)
    return {
        k: np.asarray(v, dtype=np.float32)
        for k, v in (
            ("like_user", like_user),
            ("like_item", like_item),
            ("offset_user", off_user),
            ("offset_item", off_item),
        )
    }


def pair_deep(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    features: torch.Tensor,
    chunk: int = 8192,
) -> torch.Tensor:
    """The trained task outputs (:class:`~moo_search.recommender.model.task_towers.TaskTowers`)
    of pairs, (N, 3) in the order of ``TASKS``."""
    model, device = scorer.model, scorer.device
    out = []
    with torch.no_grad():
        for lo in range(0, len(users), chunk):
            sel = slice(lo, lo + chunk)
            eu = ei = None
            if scorer.user_emb is not None:
                eu = scorer.user_emb[torch.as_tensor(users[sel], device=device)]
                ei = scorer.item_emb[torch.as_tensor(items[sel], device=device)]
            out.append(model.task_towers(features[sel], eu, ei).float())
    return torch.cat(out) if out else torch.zeros(0, len(TASKS), device=device)


def _head(model: Any, task: str, cold: bool = False) -> tuple[torch.nn.Linear, slice]:
    """The linear output of ``task`` (on new items: ``cold``) and the task features it reads."""
    if cold:
        return getattr(model.tasks, f"cold_{task}"), slice(None)
    if task == "conversion":
        return model.ctr.linear, slice(0, model.ctr.linear.in_features)
    return (model.tasks.click if task == "click" else model.tasks.satisfaction), slice(None)


def _fit(
    head: torch.nn.Linear, task: str, x: torch.Tensor, y: torch.Tensor, offset: torch.Tensor
) -> float:
    from moo_search.recommender.train.ctr import fit_logistic, fit_ridge

    if task == "satisfaction":
        return fit_ridge(head, x, y, offset=offset)
    return fit_logistic(head, x, y, offset=offset)


def _apply(head: torch.nn.Linear, task: str, x: torch.Tensor, offset: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = head(x.to(head.weight.dtype)).squeeze(-1).float() + offset.float()
        out = out if task == "satisfaction" else torch.sigmoid(out)
    return out.float().cpu().numpy().astype(np.float64)


def _folds(users: np.ndarray, seed: int) -> np.ndarray:
    """Each pair's fold, by its user (a user's pairs stay together), seeded."""
    uniq, inv = np.unique(users, return_inverse=True)
    fold_of = np.random.default_rng([seed, 7]).permutation(len(uniq)) % HEAD_FOLDS
    return np.asarray(fold_of[inv])


class TaskFeatures:
    """Each part's task pairs, their features (all columns) and their trained task outputs,
    every task of ``tasks`` from one pass over the part's users: a user's catalog row is
    scored once for all of them (:func:`pair_features`: a pair's features depend on neither
    its group nor its order). ``cold``: the pairs of the part's held-out (new) items. The
    heads' fit and the metrics of a part read the same features."""

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
        self._parts: dict[tuple[str, bool], dict[str, tuple[Any, torch.Tensor, Any]]] = {}

    def get(self, part: str, task: str, cold: bool = False) -> tuple[Any, torch.Tensor, Any]:
        """(pairs, features, trained outputs (N,)) of ``task`` on ``part``."""
        from moo_search.recommender.model.tasks import cold_task_pairs

        key = (part, cold)
        if key not in self._parts:
            kw = {"negatives": self.negatives, "seed": self.seed}
            make = cold_task_pairs if cold else task_pairs
            pairs = {t: make(self.split, part, t, **kw) for t in self.tasks}
            users = np.concatenate([p.users for p in pairs.values()])
            items = np.concatenate([p.items for p in pairs.values()])
            x = pair_features(self.scorer, users, items)
            deep = pair_deep(self.scorer, users, items, x)
            bounds = np.cumsum([0, *(len(p.users) for p in pairs.values())])
            self._parts[key] = {
                t: (p, x[lo:hi], deep[lo:hi, TASKS.index(t)])
                for (t, p), lo, hi in zip(pairs.items(), bounds, bounds[1:])
            }
        return self._parts[key][task]


def _pairs_x(
    features: TaskFeatures, part: str, task: str, cold: bool = False
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.nn.Linear]:
    pairs, x, deep = features.get(part, task, cold)
    head, cols = _head(features.scorer.model, task, cold)
    return pairs, x[:, cols], deep, head


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


def _has_cold(split: Split, part: str) -> bool:
    return bool(getattr(split, "has_cold_items", False) and len(split.cold_part(part)[1]))


def fit_task_heads(
    scorer: CatalogScorer,
    split: Split,
    *,
    negatives: int,
    seed: int,
    features: TaskFeatures | None = None,
) -> dict[str, float]:
    """Fit each task's linear head on validation pairs, around the task's trained output (an
    offset with its coefficient fixed at 1: the fit re-weighs the count features and the
    backbone's score, and cannot scale away what the towers learned for the task); the heads
    of new items on validation's new items. Their fit losses.

    Validation, not train: a train pair's backbone score is in-sample (EASE was fit on it)
    while a test pair's is not, and a head fit on train learns that gap (click AUC 0.73 on
    ML-100K's test fit on train, 0.84 fit on validation). Validation's own metrics come out of
    fold (:func:`task_predictions`). ``features``: the scorer's :class:`TaskFeatures`, shared
    with the metrics."""
    out: dict[str, float] = {}
    feats = _features(scorer, split, negatives, seed, features)
    for cold in (False, True) if _has_cold(split, "val") else (False,):
        for task in TASKS:
            pairs, x, deep, head = _pairs_x(feats, "val", task, cold)
            if len(pairs.y) and (task != "click" or pairs.y.min() < 1):
                y = torch.as_tensor(pairs.y, dtype=torch.float32, device=scorer.device)
                name = f"{'cold_item/' if cold else ''}{task}_fit_loss"
                out[name] = _fit(head, task, x, y, deep)
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
    cold: bool = False,
) -> tuple[Any, np.ndarray]:
    """(pairs, predictions) of ``task`` on ``part`` (its new items: ``cold``): p(click),
    p(like) or the rating. On validation each user's pairs are predicted by a head fit on the
    other users' pairs (cross-fitting, out of fold); elsewhere by the model's head
    (:func:`fit_task_heads`)."""
    import copy

    feats = _features(scorer, split, negatives, seed, features, (task,))
    pairs, x, deep, head = _pairs_x(feats, part, task, cold)
    if part != "val" or not len(pairs.y):
        return pairs, _apply(head, task, x, deep)
    folds = _folds(pairs.users, seed)
    pred = np.empty(len(pairs.y))
    y = torch.as_tensor(pairs.y, dtype=torch.float32, device=scorer.device)
    for f in range(HEAD_FOLDS):
        held = torch.as_tensor(folds == f, device=scorer.device)
        fold_head = copy.deepcopy(head)
        _fit(fold_head, task, x[~held], y[~held], deep[~held])
        pred[folds == f] = _apply(fold_head, task, x[held], deep[held])
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
    (and their old ``ctr_*`` names), satisfaction RMSE; with held-out items, the same on
    them under ``cold_item/`` and on warm and held-out items' pairs together under ``mixed/``
    (not the old names)."""
    out: dict[str, float] = {}
    feats = _features(scorer, split, negatives, seed, features)
    kw: dict[str, Any] = {"negatives": negatives, "seed": seed, "features": feats}
    both: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for cold in (False, True) if _has_cold(split, part) else (False,):
        pre = "cold_item/" if cold else ""
        for task in ("conversion", "satisfaction", "click"):
            pairs, p = task_predictions(scorer, split, part, task, cold=cold, **kw)
            if len(pairs.y):
                both.setdefault(task, []).append((pairs.y, p))
                out.update(_task_scores(pre, task, pairs.y, p))
    for task, rows in both.items():
        if len(rows) == 2:  # warm and new items' pairs, each predicted by its own head
            y, p = (np.concatenate(c) for c in zip(*rows))
            out.update(_task_scores("mixed/", task, y, p))
    if "conversion_auc" in out:
        out["ctr_auc"], out["ctr_logloss"] = out["conversion_auc"], out["conversion_logloss"]
    return out


def _task_scores(pre: str, task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """``task``'s metrics of predictions ``p`` of labels ``y``, named with prefix ``pre``."""
    if task == "satisfaction":
        return {f"{pre}satisfaction_rmse": float(np.sqrt(np.mean((p - y) ** 2)))}
    return {f"{pre}{task}_auc": auc(y, p), f"{pre}{task}_logloss": logloss(y, p)}
