"""The `moo-search` command end to end on small specs (fast tier)."""

from __future__ import annotations

import json

import optuna
import yaml

from moo_search.cli import main

from .helpers import TINY

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_trial_command_prints_metrics_beside_baselines(tmp_path, capsys):
    spec = dict(TINY, train={**TINY["train"], "max_steps": 10})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["trial", str(path), "--artifacts", str(tmp_path / "art")]) == 0
    out = capsys.readouterr().out
    for row in ("trial", "Random", "MostPop", "BPR", "precision@10", "ild@10", "ctr_auc"):
        assert row in out
    assert "cost:" in out and (tmp_path / "art" / "adapter" / "adapter_config.json").is_file()
    assert main(["trial", str(path), "--no-baselines", "--json", "--set", "train.max_steps=3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["metrics"]) == {"val", "test"}


def test_run_command_runs_resumes_and_reports(tmp_path, capsys):
    spec = {
        "name": "cli-zdt",
        "objective": "zdt1",
        "problem": {"n_var": 4},
        "objectives": [
            {"metric": "f1", "direction": "minimize"},
            {"metric": "f2", "direction": "minimize"},
        ],
        "driver": {"population": 6, "reference_point": [1.1, 1.1]},
        "budget": {"n_trials": 12},
        "out_dir": str(tmp_path / "study"),
    }
    path = tmp_path / "zdt.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--n-trials", "5"]) == 0
    assert main(["run", str(path)]) == 0
    captured = capsys.readouterr()
    assert "12 complete, 0 failed" in captured.out
    assert "[cli-zdt] 12/12 complete" in captured.err
    assert (
        tmp_path / "study" / "index.html"
    ).is_file() is False  # custom objectives: no auto report
    assert main(["report", str(tmp_path / "study")]) == 0
    assert (tmp_path / "study" / "index.html").is_file()
    study = optuna.load_study(study_name="cli-zdt", storage=f"sqlite:///{tmp_path}/study/study.db")
    assert len(study.trials) == 12


def test_run_with_a_changed_objective_set_refuses_to_mix_studies(tmp_path, capsys):
    spec = {
        "name": "mix",
        "objective": "zdt1",
        "problem": {"n_var": 3},
        "objectives": [
            {"metric": "f1", "direction": "minimize"},
            {"metric": "f2", "direction": "minimize"},
        ],
        "budget": {"n_trials": 2},
        "out_dir": str(tmp_path / "s"),
    }
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "--set", "objectives.0.direction=maximize"]) == 2
    err = capsys.readouterr().err
    assert "already exists with objectives" in err and "--study-name" in err
