"""The business tasks: labels on a planted fixture, seeded negatives, count baselines against
a direct computation, the heads learning on planted structure, old names still read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from moo_search import run_trial
from moo_search.recommender.baselines.ranking import BaselineContext
from moo_search.recommender.baselines.tasks import count_task_baselines
from moo_search.recommender.data import Dataset
from moo_search.recommender.data.split import make_split
from moo_search.recommender.metrics import auc, is_known_metric, metric_direction
from moo_search.recommender.model.tasks import rating_offsets, task_pairs
from moo_search.recommender.prepare import prepare_data

from ..helpers import tiny_spec


def _planted() -> Dataset:
    """Two users, six items, timestamps so the chronological split is known: each user's
    last interaction is test, the one before validation."""
    rows = [
        # user 0: train 0 (rating 5), 1 (rating 2), val 2 (rating 4), test 3 (rating 1)
        (0, 0, 5.0, 1),
        (0, 1, 2.0, 2),
        (0, 2, 4.0, 3),
        (0, 3, 1.0, 4),
        # user 1: train 0, 4, val 5, test 1
        (1, 0, 3.0, 1),
        (1, 4, 5.0, 2),
        (1, 5, 4.0, 3),
        (1, 1, 2.0, 4),
    ]
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    items = pd.DataFrame(
        {"title": [f"i{i}" for i in range(6)], "year": [""] * 6, "genres": [[] for _ in range(6)]}
    )
    return Dataset(
        name="planted",
        interactions=df,
        items=items,
        users=pd.DataFrame(index=range(2)),
        user_ids=np.arange(2),
        item_ids=np.arange(6),
    )


def test_labels_on_a_planted_fixture():
    split = make_split(_planted(), ratios=(0.5, 0.25, 0.25), threshold=4.0)
    test = split.part("test")
    assert sorted(zip(test["user"], test["item"])) == [(0, 3), (1, 1)]
    # conversion: a click without a like (rating 1 and 2) is 0; satisfaction: the rating
    conv = task_pairs(split, "test", "conversion")
    assert dict(zip(zip(conv.users, conv.items), conv.y)) == {(0, 3): 0.0, (1, 1): 0.0}
    val = task_pairs(split, "val", "conversion")
    assert dict(zip(zip(val.users, val.items), val.y)) == {(0, 2): 1.0, (1, 5): 1.0}
    sat = task_pairs(split, "test", "satisfaction")
    assert dict(zip(zip(sat.users, sat.items), sat.y)) == {(0, 3): 1.0, (1, 1): 2.0}
    # click: both test interactions are positives (disliked or not); negatives never touch
    # anything the user interacted with, in any part
    click = task_pairs(split, "test", "click", negatives=3, seed=0)
    assert len(click.y) == 2 * 4 and click.y.sum() == 2
    touched = {0: {0, 1, 2, 3}, 1: {0, 1, 4, 5}}
    for u, i, y in zip(click.users, click.items, click.y):
        assert (i in touched[u]) == bool(y)


def test_click_negatives_are_reproducible_by_seed_and_differ_between_seeds():
    data = prepare_data(tiny_spec())
    a = task_pairs(data.split, "val", "click", negatives=4, seed=0)
    b = task_pairs(data.split, "val", "click", negatives=4, seed=0)
    c = task_pairs(data.split, "val", "click", negatives=4, seed=1)
    assert np.array_equal(a.items, b.items) and not np.array_equal(a.items, c.items)
    assert a.y.mean() == pytest.approx(1 / 5)
    seen = set(zip(data.split.train["user"], data.split.train["item"]))
    seen |= set(zip(data.split.val["user"], data.split.val["item"]))
    seen |= set(zip(data.split.test["user"], data.split.test["item"]))
    neg = a.y == 0
    assert not any((u, i) in seen for u, i in zip(a.users[neg], a.items[neg]))


def test_count_baselines_equal_a_direct_computation():
    spec = tiny_spec()
    data = prepare_data(spec)
    ctx = BaselineContext.of(spec, data)
    res = count_task_baselines(ctx)
    split = data.split
    tr, test = split.train, split.test
    # satisfaction: g + b_u + b_i at the shrinkage chosen on validation, computed by hand
    k = ctx.tuned["Counts"]["rating_shrink"]
    g = tr["rating"].mean()
    bu = tr.assign(r=tr["rating"] - g).groupby("user")["r"].sum() / (tr.groupby("user").size() + k)
    resid = tr["rating"] - g - tr["user"].map(bu).fillna(0.0)
    bi = resid.groupby(tr["item"]).sum() / (tr.groupby("item").size() + k)
    pred = g + test["user"].map(bu).fillna(0.0) + test["item"].map(bi).fillna(0.0)
    rmse = float(np.sqrt(np.mean((pred - test["rating"]) ** 2)))
    assert res["test"]["satisfaction_rmse"] == pytest.approx(rmse, rel=1e-6)  # float32 ratings
    # click: popularity orders the pairs, so its AUC is popularity's AUC
    click = task_pairs(split, "test", "click", negatives=4, seed=spec.seed)
    counts = np.bincount(tr["item"], minlength=split.n_items)
    assert res["test"]["click_auc"] == pytest.approx(auc(click.y, counts[click.items]), abs=1e-9)
    # conversion keeps its old name as well
    assert res["test"]["conversion_auc"] == res["test"]["ctr_auc"]


def test_rating_offsets_leave_one_out_removes_the_pairs_own_rating():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 0])
    ratings = np.array([5.0, 1.0, 3.0])
    off = rating_offsets(users, items, ratings, n_users=2, n_items=2, shrink=0.0)
    u_loo, _ = off.pair_offsets(users, items, ratings)
    # user 0 without its rating 5: only the 1 remains, offset 1 - g
    assert u_loo[0] == pytest.approx(1.0 - ratings.mean())


def test_task_metrics_are_known_objectives_with_directions():
    for name, direction in (
        ("click_auc", "maximize"),
        ("conversion_auc", "maximize"),
        ("satisfaction_rmse", "minimize"),
        ("ctr_auc", "maximize"),
    ):
        assert is_known_metric(name) and metric_direction(name) == direction


def test_the_heads_beat_their_count_baselines_on_planted_structure():
    spec = tiny_spec(
        **{"train.max_steps": 60, "loss.weights.click": 0.5, "loss.weights.satisfaction": 0.5}
    )
    res = run_trial(spec)
    counts = count_task_baselines(BaselineContext.of(spec, prepare_data(spec)))
    test = res.metrics["test"]
    # click: the fused model's scores know which items a user takes; popularity does not
    assert test["click_auc"] > counts["test"]["click_auc"] + 0.05
    # the heads start as their count baselines and refit on train: not worse beyond noise
    assert test["conversion_auc"] > counts["test"]["conversion_auc"] - 0.02
    assert test["satisfaction_rmse"] < counts["test"]["satisfaction_rmse"] + 0.02
    assert res.history["task_fit"]["click_fit_loss"] < np.log(2)


def test_the_tasks_features_from_one_pass_are_each_tasks_own():
    """A trial computes a part's task features once for all three tasks (TaskFeatures) and
    reads them for the heads' fit and the metrics: the same features, and so the same metrics,
    as each task computed alone."""
    from moo_search.recommender.model.tasks import task_pairs
    from moo_search.recommender.task_eval import TaskFeatures, pair_features, task_metrics
    from moo_search.recommender.trial import Trial

    trial = Trial(tiny_spec(**{"train.max_steps": 4}))
    trial.run()
    split, kw = trial.data.split, trial.task_kw
    shared = TaskFeatures(trial.scorer, split, **kw)
    for part in ("val", "test"):
        for task in ("click", "conversion", "satisfaction"):
            pairs, x, _ = shared.get(part, task)
            alone = task_pairs(split, part, task, **kw)
            assert np.array_equal(pairs.users, alone.users) and len(pairs.users)
            assert torch.equal(x, pair_features(trial.scorer, alone.users, alone.items))
        fresh = task_metrics(trial.scorer, split, part, **kw)
        assert fresh == {k: trial.metrics[part][k] for k in fresh}
