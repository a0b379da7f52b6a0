"""A resume never repeats a finished configuration, whatever the sampler."""

from __future__ import annotations

import optuna
import pytest

from moo_search.drivers import run_study
from moo_search.spec import spec_from_dict

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _spec(tmp_path, algorithm: str):
    return spec_from_dict(
        {
            "name": "resume",
            "objective": "zdt1",
            "problem": {"n_var": 4},
            "objectives": [
                {"metric": "f1", "direction": "minimize"},
                {"metric": "f2", "direction": "minimize"},
            ],
            "driver": {
                "backend": "optuna",
                "algorithm": algorithm,
                "population": 4,
                "seed": 0,
                "reference_point": [1.1, 1.1],
            },
            "budget": {"n_trials": 2},
            "storage": f"sqlite:///{tmp_path}/study.db",
            "out_dir": str(tmp_path / "out"),
        }
    )


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "tpe", "random", "gp"])
def test_five_resumes_never_repeat_a_parameter_set(tmp_path, algorithm):
    spec = _spec(tmp_path, algorithm)
    for n in (2, 4, 6, 8, 10, 12):  # the first run, then five resumes
        run_study(spec, n_trials=n)
    study = optuna.load_study(study_name="resume", storage=spec.storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    params = [tuple(sorted(t.params.items())) for t in done]
    assert len(params) == 12
    assert len(set(params)) == 12, f"{12 - len(set(params))} repeated parameter sets"


def test_a_fresh_study_is_still_reproducible_from_its_seed(tmp_path):
    runs = []
    for i in range(2):
        spec = _spec(tmp_path / str(i), "nsga2")
        (tmp_path / str(i)).mkdir()
        run_study(spec, n_trials=4)
        study = optuna.load_study(study_name="resume", storage=spec.storage)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_a_conditional_dimension_is_suggested_only_where_it_acts(tmp_path, backend):
    """Listed before what it depends on (a saved spec sorts its keys), it still works."""
    from tests.helpers import custom_spec

    url = f"sqlite:///{tmp_path}/s.db"
    spec = custom_spec(
        "conditional",
        n_trials=12,
        backend=backend,
        storage=url,
        out_dir=str(tmp_path),
        search_space={
            "y": {"float": [0.0, 1.0], "when": {"kind": ["a"]}},
            "kind": {"categorical": ["a", "b"]},
            "x": {"float": [0.0, 1.0]},
        },
    )
    study = run_study(spec)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 12
    kinds = {t.params["kind"] for t in done}
    assert kinds == {"a", "b"}
    for t in done:
        assert ("y" in t.params) == (t.params["kind"] == "a"), t.params


def test_a_condition_on_a_later_or_unknown_value_names_the_field():
    from moo_search.errors import SpecError
    from tests.helpers import custom_spec

    with pytest.raises(SpecError, match=r"search_space\.y\.when.*without a 'when'"):
        custom_spec(
            "conditional",
            n_trials=2,
            search_space={
                "y": {"float": [0.0, 1.0], "when": {"kinds": ["a"]}},
                "kind": {"categorical": ["a", "b"]},
                "x": {"float": [0.0, 1.0]},
            },
        )
    with pytest.raises(SpecError, match=r"\['c'\] are not choices of kind"):
        custom_spec(
            "conditional",
            n_trials=2,
            search_space={
                "kind": {"categorical": ["a", "b"]},
                "x": {"float": [0.0, 1.0]},
                "y": {"float": [0.0, 1.0], "when": {"kind": ["c"]}},
            },
        )


def test_two_run_processes_on_one_study_never_run_a_configuration_twice(tmp_path):
    """Two `run` commands started together on one SQLite study (both seeded from the spec)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    spec = _spec(tmp_path, "random")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**spec.to_dict(redact=False), "budget": {"n_trials": 16}}))
    env = {**os.environ, "PYTHONPATH": str(repo)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "moo_search.cli", "run", str(path), "--no-report"],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="resume", storage=spec.storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    params = [tuple(sorted(t.params.items())) for t in done]
    assert len(params) >= 16 and len(set(params)) == len(params)
