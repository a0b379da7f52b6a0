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
    page = tmp_path / "study" / "index.html"
    assert page.is_file()  # every study gets its dashboard at the end of run
    built = page.stat().st_mtime_ns
    assert main(["report", str(tmp_path / "study")]) == 0
    assert page.stat().st_mtime_ns >= built and "cli-zdt" in page.read_text()
    study = optuna.load_study(study_name="cli-zdt", storage=f"sqlite:///{tmp_path}/study/study.db")
    # 12 run; a proposal repeating a finished trial would be recorded PRUNED, not run
    run = [t for t in study.trials if t.state != optuna.trial.TrialState.PRUNED]
    assert len(run) == 12


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


def test_ctrl_c_stops_cleanly_and_run_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import REPO

    spec = {
        "name": "sigint",
        "objective": "tests.objectives:slow",
        "search_space": {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "minimize"},
            {"metric": "b", "direction": "minimize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 4},
        "out_dir": str(tmp_path / "study"),
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MOO_TEST_MARKERS": str(tmp_path),
        "MOO_TEST_SLEEP": "3",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "moo_search.cli", "run", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as at a terminal: a CI started in the background (`... &`) ignores SIGINT, and
        # Python keeps an ignored SIGINT ignored, so Ctrl-C would never reach the run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    end = time.time() + 60
    while not list(tmp_path.glob("*.running")) and time.time() < end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    url = f"sqlite:///{tmp_path}/study/study.db"
    study = optuna.load_study(study_name="sigint", storage=url)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.user_attrs["moo:fail_reason"] for t in failed] == ["interrupted (Ctrl-C)"]
    env["MOO_TEST_SLEEP"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "moo_search.cli", "run", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="sigint", storage=url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4


def test_worker_command_with_local_processes_completes_the_study(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOO_TEST_SLEEP", "0.1")
    spec = {
        "name": "joined",
        "objective": "tests.objectives:slow",
        "search_space": {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "minimize"},
            {"metric": "b", "direction": "minimize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 10},
        "out_dir": str(tmp_path / "study"),
    }
    path = tmp_path / "j.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path}/study/study.db"
    assert main(["worker", str(path), "--storage", url]) == 2  # no study yet: a clear error
    assert "start it with `moo-search run`" in capsys.readouterr().err
    assert main(["run", str(path), "--n-trials", "2"]) == 0
    # a worker works to the budget of the run it joins (2, done), unless told otherwise
    assert main(["worker", str(path), "--storage", url]) == 0
    study = optuna.load_study(study_name="joined", storage=url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
    assert main(["worker", str(path), "--storage", url, "--workers", "2", "--n-trials", "10"]) == 0
    assert "[joined] 10/10 complete" in capsys.readouterr().err
    study = optuna.load_study(study_name="joined", storage=url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 10
    assert len({t.number for t in study.trials}) == len(study.trials)


def test_list_names_what_a_spec_may_use(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for line_start, names in [
        ("datasets", ["movielens-100k", "synthetic", "csv"]),
        ("adapters", ["lora", "dora", "ia3", "none"]),
        ("backbones", ["ease", "itemknn", "mf"]),
        ("drivers", ["optuna (nsga2, nsga3, tpe, random, gp)", "pymoo (nsga2, nsga3)"]),
        ("metrics", ["precision@K", "ctr_auc", "cost/seconds"]),
    ]:
        line = next(ln for ln in out.splitlines() if ln.startswith(line_start))
        assert all(n in line for n in names), line


def test_listing_one_kind_names_each_entrys_own_knobs(capsys):
    """``list datasets`` (backbones, adapters): every entry's own knobs, where they go in the
    spec and their defaults, read from the params model the entry registered."""
    assert main(["list", "datasets"]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines()[1:]}
    assert "data.params.k_core=10" in rows["book-crossing"]
    assert "data.params.n_users=300" in rows["synthetic"]
    assert "no knobs of its own" in rows["movielens-100k"]
    assert main(["list", "backbones"]) == 0
    assert "fusion.cf_params.lambda=None" in capsys.readouterr().out  # by its spec name
