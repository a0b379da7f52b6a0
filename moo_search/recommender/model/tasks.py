"""The business tasks: click, conversion and satisfaction, their labels, their count baselines
and the heads that predict them.

Each task is defined once, here, on a part's interactions (``train``, ``val`` or ``test``):

* **click**: did the user interact with the item? Positives are the part's (user, item)
  interactions; negatives are ``eval.click_negatives`` items per positive drawn uniformly from
  the warm items the user never interacted with in any part, with a generator seeded by the
  spec's seed and the part (the same pairs for every trial and baseline of a study).
  Metrics ``click_auc``, ``click_logloss``. Count baseline: item popularity (train
  interactions, a logistic fit of its log on train pairs).
* **conversion**: given an interaction, did the user like it (rating >= the relevance
  threshold)? Metrics ``conversion_auc``, ``conversion_logloss`` (``ctr_auc`` and
  ``ctr_logloss`` are their old names, recorded alongside). Count baseline: the smoothed
  like-rates of user and item (:mod:`moo_search.recommender.model.ctr`).
* **satisfaction**: how much did the user like it (the rating)? Metric
  ``satisfaction_rmse``. Count baseline: global mean plus shrunk user and item offsets (the
  classic baseline predictor), shrinkage chosen on validation.

The heads share one feature vector per pair (:data:`TASK_FEATURES`: the like-rates,
popularity, the fused model's two z-scores, the rating offsets and the user's activity) and
have one linear output per task; each starts as its count baseline, is trained with the
towers by its loss term (``loss.weights.click``, ``ctr``, ``satisfaction``) and is then fit
to convergence on validation pairs (a train pair's backbone score is in-sample, a test
pair's is not); validation's own task metrics are out of fold (two folds of users).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "RATING_SHRINK_GRID",
    "TASK_FEATURES",
    "RatingOffsets",
    "TaskHeads",
    "TaskPairs",
    "click_pairs",
    "cold_task_pairs",
    "rating_offsets",
    "task_pairs",
]

TASK_FEATURES = (
    "user_like_rate",
    "item_like_rate",
    "log_pop",
    "collaborative",
    "semantic",
    "user_rating_offset",
    "item_rating_offset",
    "user_log_activity",
)
"""The shared features; the conversion (CTR) head reads the first five (``CTR_FEATURES``)."""

RATING_SHRINK_GRID = (0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0)
"""Shrinkage of the rating offsets the satisfaction baseline is tuned over (on validation)."""

DEFAULT_SHRINK = 10.0
_PARTS = {"train": 0, "val": 1, "test": 2}


@dataclass
class TaskPairs:
    """(user, item) pairs of one task and part, with their labels."""

    users: np.ndarray
    items: np.ndarray
    y: np.ndarray


def click_pairs(split: Any, part: str, negatives: int, seed: int) -> TaskPairs:
    """The click task's pairs of ``part``: its interactions (label 1) and ``negatives`` per
    interaction of warm items the user never interacted with (label 0), seeded."""
    df = split.part(part)
    users = df["user"].to_numpy()
    items = df["item"].to_numpy()
    if not len(users) or negatives <= 0:
        return TaskPairs(users, items, np.ones(len(users)))
    seen: set[tuple[int, int]] = set()
    for frame in (split.train, split.val, split.test):
        seen.update(zip(frame["user"].to_numpy().tolist(), frame["item"].to_numpy().tolist()))
    rng = np.random.default_rng([seed, _PARTS.get(part, 3), 2026])
    return _with_negatives(users, items, negatives, np.flatnonzero(split.warm), seen, rng)


def _with_negatives(
    users: np.ndarray,
    items: np.ndarray,
    negatives: int,
    pool: np.ndarray,
    seen: set[tuple[int, int]],
    rng: np.random.Generator,
) -> TaskPairs:
    """The positives (label 1) and ``negatives`` per positive drawn from ``pool`` for the
    same user (label 0), a pair in ``seen`` redrawn."""
    neg_users = np.repeat(users, negatives)
    neg_items = pool[rng.integers(0, len(pool), len(neg_users))]
    for _ in range(100):  # redraw the pairs that hit an interaction (a few % a round)
        bad = np.array(
            [(u, i) in seen for u, i in zip(neg_users.tolist(), neg_items.tolist())], dtype=bool
        )
        if not bad.any():
            break
        neg_items[bad] = pool[rng.integers(0, len(pool), int(bad.sum()))]
    return TaskPairs(
        np.concatenate([users, neg_users]),
        np.concatenate([items, neg_items]),
        np.concatenate([np.ones(len(users)), np.zeros(len(neg_users))]),
    )


def task_pairs(split: Any, part: str, task: str, *, negatives: int = 4, seed: int = 0) -> TaskPairs:
    """The pairs and labels of ``task`` (click, conversion, satisfaction) on ``part``."""
    if task == "click":
        return click_pairs(split, part, negatives, seed)
    df = split.part(part)
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    ratings = df["rating"].to_numpy().astype(np.float64)
    if task == "conversion":
        return TaskPairs(users, items, (ratings >= split.threshold).astype(np.float64))
    if task == "satisfaction":
        return TaskPairs(users, items, ratings)
    raise ValueError(f"unknown task {task!r}; one of click, conversion, satisfaction")


def cold_task_pairs(
    split: Any, part: str, task: str, *, negatives: int = 4, seed: int = 0
) -> TaskPairs:
    """The pairs and labels of ``task`` on ``part``'s held-out (new) items: their interactions
    (click: against ``negatives`` per interaction of the part's held-out items the user never
    took, seeded like :func:`click_pairs`); empty without held-out items."""
    held, df = split.cold_part(part)
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    ratings = df["rating"].to_numpy().astype(np.float64)
    if task == "conversion":
        return TaskPairs(users, items, (ratings >= split.threshold).astype(np.float64))
    if task == "satisfaction":
        return TaskPairs(users, items, ratings)
    if task != "click":
        raise ValueError(f"unknown task {task!r}; one of click, conversion, satisfaction")
    held = np.asarray(held)
    if not len(users) or negatives <= 0 or len(held) < 2:
        return TaskPairs(users, items, np.ones(len(users)))
    seen = set(zip(users.tolist(), items.tolist()))
    rng = np.random.default_rng([seed, _PARTS.get(part, 3), 2027])
    return _with_negatives(users, items, negatives, held, seen, rng)


@dataclass
class RatingOffsets:
    """Global mean rating and shrunk user and item offsets from train (the baseline
    predictor ``g + b_u + b_i``), with what leaving one train rating out needs."""

    global_mean: float
    user: np.ndarray  # (U,)
    item: np.ndarray  # (I,)
    user_sum: np.ndarray
    user_n: np.ndarray
    item_sum: np.ndarray
    item_n: np.ndarray
    shrink: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.global_mean + self.user[users] + self.item[items]

    def pair_offsets(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) offsets of each pair; with ``ratings`` (train pairs) the pair's own
        rating is left out, so a head fit on train sees what it will see on test."""
        if ratings is None:
            return self.user[users], self.item[items]
        g, k = self.global_mean, self.shrink
        u = (self.user_sum[users] - (ratings - g)) / np.maximum(self.user_n[users] - 1 + k, 1e-9)
        resid = ratings - g - self.user[users]
        i = (self.item_sum[items] - resid) / np.maximum(self.item_n[items] - 1 + k, 1e-9)
        return u, i


def rating_offsets(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    n_users: int,
    n_items: int,
    shrink: float = DEFAULT_SHRINK,
) -> RatingOffsets:
    """Offsets fit on train ratings: ``b_u = sum(r - g) / (n_u + shrink)``, then
    ``b_i = sum(r - g - b_u) / (n_i + shrink)``."""
    r = np.asarray(ratings, dtype=np.float64)
    g = float(r.mean()) if len(r) else 0.0
    us = np.bincount(users, weights=r - g, minlength=n_users)
    un = np.bincount(users, minlength=n_users).astype(np.float64)
    bu = us / np.maximum(un + shrink, 1e-9)
    resid = r - g - bu[users]
    is_ = np.bincount(items, weights=resid, minlength=n_items)
    inn = np.bincount(items, minlength=n_items).astype(np.float64)
    bi = is_ / np.maximum(inn + shrink, 1e-9)
    return RatingOffsets(g, bu, bi, us, un, is_, inn, shrink)


def split_rating_offsets(split: Any, shrink: float = DEFAULT_SHRINK) -> RatingOffsets:
    tr = split.train
    return rating_offsets(
        tr["user"].to_numpy(),
        tr["item"].to_numpy(),
        tr["rating"].to_numpy(),
        n_users=split.n_users,
        n_items=split.n_items,
        shrink=shrink,
    )


class TaskHeads(nn.Module):
    """The click and satisfaction outputs over :data:`TASK_FEATURES` (the conversion output
    is the model's CTR head), with the per-user and per-item statistics they read."""

    def __init__(self, offsets: RatingOffsets | None, n_users: int, n_items: int) -> None:
        super().__init__()
        n = len(TASK_FEATURES)
        self.click = nn.Linear(n, 1)
        self.satisfaction = nn.Linear(n, 1)
        col = TASK_FEATURES.index
        with torch.no_grad():
            self.click.weight.zero_()
            self.click.weight[0, col("log_pop")] = 1.0  # starts as popularity
            self.click.bias.zero_()
            self.satisfaction.weight.zero_()  # starts as the baseline predictor
            self.satisfaction.weight[0, col("user_rating_offset")] = 1.0
            self.satisfaction.weight[0, col("item_rating_offset")] = 1.0
            self.satisfaction.bias.fill_(offsets.global_mean if offsets is not None else 0.0)
        # the same outputs for new items, fit on validation's new items (task_eval)
        with torch.random.fork_rng(devices=[]):  # drawn apart: older trials re-run as they ran
            self.cold_click = nn.Linear(n, 1)
            self.cold_conversion = nn.Linear(n, 1)
            self.cold_satisfaction = nn.Linear(n, 1)
        with torch.no_grad():
            for cold, warm in (
                (self.cold_click, self.click),
                (self.cold_satisfaction, self.satisfaction),
            ):
                cold.load_state_dict(warm.state_dict())
            self.cold_conversion.weight.zero_()
            self.cold_conversion.bias.zero_()
        zeros_u, zeros_i = np.zeros(n_users), np.zeros(n_items)
        self.register_buffer("user_offset", _f32(offsets.user if offsets is not None else zeros_u))
        self.register_buffer("item_offset", _f32(offsets.item if offsets is not None else zeros_i))
        activity = np.log1p(offsets.user_n) if offsets is not None else zeros_u
        self.register_buffer("user_activity", _f32(activity))

    def click_logit(self, features: torch.Tensor) -> torch.Tensor:
        return self.click(features.to(self.click.weight.dtype)).squeeze(-1)

    def rating(self, features: torch.Tensor) -> torch.Tensor:
        return self.satisfaction(features.to(self.satisfaction.weight.dtype)).squeeze(-1)


def _f32(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)
