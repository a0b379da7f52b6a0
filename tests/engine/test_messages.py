"""Messages that say what happened (#37): JSON output that parsers read, a missing metric
explained by what the objective did report, a heartbeat's grace period in seconds."""

from __future__ import annotations

import json
import time

import optuna
import pytest

from moo_search.drivers import run_study

from ..helpers import custom_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_json_output_writes_a_number_no_metric_defines_as_null():
    from moo_search.cli._recommender import _json

    out = _json({"val": {"a": float("nan"), "b": [1.0, float("inf")], "c": 0.5}}, sort_keys=True)
    assert json.loads(out) == {"val": {"a": None, "b": [1.0, None], "c": 0.5}}
    assert "NaN" not in out and "Infinity" not in out


def test_a_custom_objectives_missing_metric_names_what_it_reported(tmp_path):
    from moo_search import MooSearchError

    spec = custom_spec("sphere2", n_trials=1, storage=f"sqlite:///{tmp_path}/s.db")
    raw = spec.to_dict(redact=False)
    raw["objectives"][1] = {"metric": "c", "direction": "minimize"}
    raw["budget"]["max_failures"] = 1
    from moo_search.spec import spec_from_dict

    spec = spec_from_dict(raw)
    with pytest.raises(MooSearchError):
        run_study(spec)
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    reason = study.trials[0].user_attrs["moo:fail_reason"]
    assert "the objective reported no 'c' on val (it reported: a, b)" in reason
    assert "slice" not in reason and '"' not in reason


def test_a_stale_trials_reason_gives_the_grace_period_in_seconds(tmp_path):
    from moo_search.drivers._workers import fail_stale

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/h.db", heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="h")
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    time.sleep(3.5)  # past Optuna's default grace: twice the interval
    assert fail_stale(study) == 1
    reason = study.trials[0].user_attrs["moo:fail_reason"]
    assert "no heartbeat for more than 2 s" in reason and "None" not in reason
