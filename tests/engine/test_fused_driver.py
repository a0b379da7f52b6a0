"""driver.fuse through the real drivers and storage: a worker takes up to K trials at once,
evaluates them in one call, and records each as one trial alone is recorded."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.study import ATTR, count_states
from tests import objectives

from ..helpers import stepped_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(autouse=True)
def _clean():
    objectives.GROUPS.clear()
    objectives.FAIL_X.clear()
    yield
    objectives.FAIL_X.clear()
    objectives.BREAK_GROUP.clear()


def _trials(study):
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_fused_trials_are_stored_as_trials_run_alone(backend, tmp_path):
    def spec(fuse, name):
        return stepped_spec(
            n_trials=8,
            backend=backend,
            out_dir=str(tmp_path / name),
            storage=f"sqlite:///{tmp_path}/{name}.db",
            driver={"algorithm": "random" if backend == "optuna" else "nsga2", "fuse": fuse},
        )

    alone, together = run_study(spec(1, "alone")), run_study(spec(3, "together"))
    assert objectives.GROUPS and max(objectives.GROUPS) == 3  # (a generation's last: alone)
    assert count_states(together)["COMPLETE"] == count_states(alone)["COMPLETE"] == 8
    a = [t for t in _trials(alone) if t.state == TrialState.COMPLETE]
    b = [t for t in _trials(together) if t.state == TrialState.COMPLETE]
    assert [t.params for t in a] == [t.params for t in b]  # the same proposals
    assert [t.values for t in a] == [t.values for t in b]
    for t in b:  # each its own artifacts, metrics and worker
        assert t.user_attrs[ATTR.ARTIFACTS].endswith(f"trial_{t.number:05d}")
        assert t.user_attrs[ATTR.METRICS]["val"]["a"] == t.params["x"]
        assert ATTR.WORKER in t.user_attrs


def test_a_failed_or_pruned_member_is_its_own_outcome(tmp_path):
    xs = [0.9, 0.8, 0.013, 0.05, 0.7, 0.6, 0.02, 0.5]
    objectives.FAIL_X.add(0.013)
    spec = stepped_spec(
        n_trials=5,
        out_dir=str(tmp_path),
        storage=f"sqlite:///{tmp_path}/s.db",
        enqueue=[{"name": f"x{i}", "x": x} for i, x in enumerate(xs)],
        driver={
            "fuse": 4,
            "early_stopping": {"enabled": True, "eta": 2, "min_trials": 3, "rungs": [0.25]},
        },
    )
    study = run_study(spec)
    by_x = {t.params.get("x"): t for t in _trials(study)}
    failed = by_x[0.013]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[ATTR.FAIL] == "RuntimeError: x = 0.013 fails"
    assert by_x[0.9].state == by_x[0.8].state == TrialState.COMPLETE
    pruned = [t for t in _trials(study) if t.state == TrialState.PRUNED]
    assert pruned and all("stopped at rung" in t.user_attrs[ATTR.FAIL] for t in pruned)
    assert count_states(study)["COMPLETE"] == 5
    assert objectives.GROUPS[0] == 4


def test_a_group_evaluation_that_raises_fails_its_trials_with_the_reason(tmp_path):
    objectives.BREAK_GROUP.append(True)
    from moo_search.errors import MooSearchError

    url = f"sqlite:///{tmp_path}/s.db"
    spec = stepped_spec(
        n_trials=3,
        out_dir=str(tmp_path),
        storage=url,
        driver={"fuse": 3},
        budget={"n_trials": 3, "max_failures": 3},
    )
    with pytest.raises(MooSearchError, match="3 trials failed in this run"):
        run_study(spec)
    study = optuna.load_study(study_name="stepped", storage=url)
    failed = [t for t in _trials(study) if t.state == TrialState.FAIL]
    assert len(failed) == 3
    assert all(t.user_attrs[ATTR.FAIL] == "RuntimeError: the group broke" for t in failed)


def test_the_budget_caps_a_group(tmp_path):
    spec = stepped_spec(n_trials=5, out_dir=str(tmp_path), driver={"fuse": 4})
    study = run_study(spec)
    assert count_states(study)["COMPLETE"] == 5
    assert objectives.GROUPS == [4]  # then the one left, alone


def test_an_objective_that_cannot_fuse_runs_one_at_a_time(tmp_path, caplog):
    from ..helpers import custom_spec

    driver = {"algorithm": "nsga2", "population": 4, "seed": 1, "reference_point": [2.5, 2.5]}
    spec = custom_spec("sphere2", n_trials=3, out_dir=str(tmp_path), driver={**driver, "fuse": 4})
    with caplog.at_level("INFO", logger="moo_search"):
        study = run_study(spec)
    assert count_states(study)["COMPLETE"] == 3
    assert "evaluates one trial at a time" in caplog.text


def test_fuse_is_checked_in_the_spec():
    from moo_search.errors import SpecError

    with pytest.raises(SpecError, match=r"driver.fuse: a number of trials >= 1, or auto; got 0"):
        stepped_spec(n_trials=1, driver={"fuse": 0})


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_local_workers_fuse_to_an_exact_budget_and_a_resume_repeats_nothing(backend, tmp_path):
    import subprocess
    import sys

    import yaml

    from ..conftest import REPO

    spec = stepped_spec(
        n_trials=9,
        backend=backend,
        out_dir=str(tmp_path / "study"),
        storage=f"sqlite:///{tmp_path}/s.db",
        driver={"fuse": 3},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))

    def run(*extra):
        p = subprocess.run(
            [sys.executable, "-m", "moo_search.cli", "run", str(path), "--workers", "2", *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        assert "Traceback" not in p.stderr

    run()
    study = optuna.load_study(study_name="stepped", storage=f"sqlite:///{tmp_path}/s.db")
    assert count_states(study)["COMPLETE"] == 9
    run("--n-trials", "14")
    study = optuna.load_study(study_name="stepped", storage=f"sqlite:///{tmp_path}/s.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 14
    xs = [t.params["x"] for t in done]
    assert len(set(xs)) == len(xs)  # no configuration run twice
