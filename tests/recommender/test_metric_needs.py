"""A metric's meaning checked against the data and the protocol before any trial runs (#37):
held-out-item metrics need held-out items, task metrics need graded ratings, diversity needs
item features, and an objective against its metric's direction needs an explicit override."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from moo_search import SpecError
from moo_search.drivers import run_study
from moo_search.recommender.metrics import NEEDS, metric_needs

from ..helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        (
            "objectives",
            [{"metric": "cold_item/recall@20", "direction": "maximize"}],
            "objectives.0.metric",
        ),
        (
            "objectives",
            [{"metric": "mixed/new_share@10", "direction": "maximize"}],
            "objectives.0.metric",
        ),
        ("constraints", ["mixed/recall@10 >= 0.01"], "constraints.0"),
        ("train.early_stop_metric", "cold_item/ndcg@10", "train.early_stop_metric"),
    ],
)
def test_a_held_out_item_metric_without_held_out_items_is_refused(key, value, field):
    with pytest.raises(SpecError, match="data.split.cold_items") as e:
        tiny_spec(**{key: value})
    assert e.value.field == field


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("satisfaction_rmse", "maximize"), ("gini@10", "maximize"), ("precision@10", "minimize")],
)
def test_an_objective_against_its_metrics_direction_needs_an_override(metric, direction):
    objectives = [{"metric": metric, "direction": direction}]
    with pytest.raises(SpecError, match="direction_override") as e:
        tiny_spec(objectives=objectives)
    assert e.value.field == "objectives.0.direction"
    objectives[0]["direction_override"] = True
    assert tiny_spec(objectives=objectives).objectives[0].direction == direction


def test_every_need_a_metric_declares_is_known():
    assert set(metric_needs("cold_item/recall@20")) == {"held_out_items"}
    assert set(metric_needs("satisfaction_rmse")) == {"ratings"}
    assert set(metric_needs("ild@10")) == {"item_features"}
    assert metric_needs("click_auc") == () and metric_needs("precision@10") == ()
    assert {
        n for m in ("ild@5", "conversion_auc", "mixed/recall@5") for n in metric_needs(m)
    } <= set(NEEDS)


def _csv_study(tmp_path, ratings, genres, objectives):
    rng = np.random.default_rng(0)
    rows = ["user,item,rating"]
    for u in range(60):
        for i in rng.choice(40, 12, replace=False):
            rows.append(f"u{u},i{i},{ratings(rng)}")
    (tmp_path / "i.csv").write_text("\n".join(rows) + "\n")
    items = ["item,title,genres"] + [
        f"i{i},Item {i},{('Drama|Comedy' if i % 2 else 'Action') if genres else ''}"
        for i in range(40)
    ]
    (tmp_path / "items.csv").write_text("\n".join(items) + "\n")
    return tiny_spec(
        **{
            "data": {
                "dataset": "csv",
                "path": str(tmp_path / "i.csv"),
                "params": {"items_path": str(tmp_path / "items.csv")},
                "relevance_threshold": 1,  # click-only data: a click is relevant
            },
            "objectives": objectives,
            "storage": f"sqlite:///{tmp_path}/s.db",
            "out_dir": str(tmp_path / "out"),
            "budget": {"n_trials": 1},
            "train.max_steps": 2,
        }
    )


@pytest.mark.parametrize(
    ("ratings", "genres", "metric", "direction", "says"),
    [
        (lambda rng: 1, True, "satisfaction_rmse", "minimize", "graded ratings"),
        (lambda rng: 1, True, "conversion_auc", "maximize", "click-only"),
        (lambda rng: int(rng.integers(1, 6)), False, "ild@10", "maximize", "no item has a genre"),
    ],
)
def test_an_objective_the_data_cannot_define_is_refused_before_any_trial(
    tmp_path, ratings, genres, metric, direction, says
):
    objectives = [
        {"metric": "precision@10", "direction": "maximize"},
        {"metric": metric, "direction": direction},
    ]
    spec = _csv_study(tmp_path, ratings, genres, objectives)
    with pytest.raises(SpecError, match=says) as e:
        run_study(spec)
    assert e.value.field == "objectives.1" and metric in str(e.value)
    study = optuna.load_study(study_name="tiny", storage=spec.storage)
    assert study.trials == []


def test_a_recorded_metric_the_data_cannot_define_is_one_warning(tmp_path, caplog):
    spec = _csv_study(
        tmp_path, lambda rng: 1, True, [{"metric": "precision@10", "direction": "maximize"}]
    )
    run_study(spec)
    lines = [r.getMessage() for r in caplog.records if "mean nothing here" in r.getMessage()]
    assert len(lines) == 1 and "satisfaction_rmse" in lines[0]
