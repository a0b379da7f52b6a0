"""The recommender as a study's objective: its base config is the anchor trial, enqueued
configs are variants of it, and an anchor outside the search space is refused."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.study import ATTR, STUDY_ATTR

from ..helpers import tiny_spec


def test_default_objective_study_enqueues_the_base_config_first(tmp_path):
    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/t.db",
            "search_space": {
                "fusion.alpha": {"float": [0.1, 0.9]},
                "adapter.type": {"categorical": ["lora", "ia3"]},
            },
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "ild@10", "direction": "maximize"},
            ],
            "constraints": ["precision@10 >= 0.0"],
            "budget": {"n_trials": 3},
            "enqueue": [{"name": "ia3", "adapter.type": "ia3"}],
        }
    )
    study = run_study(spec)
    first, second = study.trials[:2]
    assert first.user_attrs[ATTR.ANCHOR] == "base"
    assert first.params == {"fusion.alpha": 0.5, "adapter.type": "lora"}
    # an enqueued set is a variant of the base config, not a half-random trial
    assert second.user_attrs[ATTR.ANCHOR] == "ia3"
    assert second.params == {"fusion.alpha": 0.5, "adapter.type": "ia3"}
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3
    for t in done:
        assert set(t.user_attrs[ATTR.METRICS]) == {"val", "test"}
        assert t.user_attrs[ATTR.CONFIG]["fusion"]["alpha"] == t.params["fusion.alpha"]
        assert (tmp_path / "artifacts" / f"trial_{t.number:05d}" / "metrics.json").is_file()
        assert t.user_attrs[ATTR.CONSTRAINTS] == [pytest.approx(-t.values[0])]
    assert "MostPop" in study.user_attrs[STUDY_ATTR.BASELINES]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"train.lr": 3e-2}, "search_space.train.lr"),  # the base config outside the range
        ({"fusion.alpha": 1.0}, "search_space.fusion.alpha"),
        ({"adapter.type": "dora"}, "search_space.adapter.type"),
        ({"enqueue": [{"train.lr": 3e-4}, {"fusion.alpha": 0.9}]}, "enqueue.1.fusion.alpha"),
        ({"enqueue": [{"adapter.type": "dora"}]}, "enqueue.0.adapter.type"),
    ],
)
def test_an_anchor_outside_the_search_space_is_refused_never_run_as_something_else(
    tmp_path, over, field
):
    from moo_search import SpecError

    spec = tiny_spec(
        **{
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/t.db",
            "search_space": {
                "train.lr": {"float": [3e-5, 1e-2], "log": True},
                "fusion.alpha": {"float": [0.0, 0.5]},
                "adapter.type": {"categorical": ["lora", "ia3"]},
            },
            "fusion.alpha": 0.3,
            "budget": {"n_trials": 2},
            **over,
        }
    )
    with pytest.raises(SpecError, match="outside") as e:
        run_study(spec)
    assert e.value.field == field
    assert optuna.load_study(study_name="tiny", storage=spec.storage).trials == []
