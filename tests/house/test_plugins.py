"""A user's own module named in the spec's plugins: its entries of every kind reach every
worker through the CLI, and its own objective runs with a config section of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from moo_search.study import is_derived, load_study

optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- a user's plugins


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "moo_search.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_users_plugins_reach_every_worker_through_the_cli(tmp_path):
    """Registered in the user's own module, named in `plugins`, used with `--workers 2`: a
    dataset, a metric named with digits (f1@10), a closed-form and a learned backbone and an
    adapter type with searched knobs of their own, a loss term, a baseline that joins the
    reference front, a figure."""
    import yaml

    from ..helpers import TINY

    (tmp_path / "house_plugins.py").write_text((REPO / "tests" / "house_plugin.txt").read_text())
    spec = {
        **{k: v for k, v in TINY.items() if k != "data"},
        "name": "plugged",
        "plugins": ["house_plugins"],
        "data": {"dataset": "toy-150", "params": {"n_items": 90}},
        "adapter": {"type": "lora2", "params": {"rank2": 2}},
        "fusion": {"alpha": 0.2, "cf": "pop2", "cf_params": {"gamma": 1.0}},
        "loss": {"weights": {"ranking": 1.0, "bias2": 0.3}},
        "train": {**TINY["train"], "max_steps": 2},
        "search_space": {
            "fusion.cf": {"categorical": ["pop2", "mf2"]},
            "fusion.cf_params.gamma": {"float": [0.0, 2.0], "when": {"fusion.cf": ["pop2"]}},
            "fusion.cf_params.dim": {"int": [4, 16], "when": {"fusion.cf": ["mf2"]}},
            "adapter.params.rank2": {"int": [1, 4]},
            "loss.weights.bias2": {"float": [0.0, 1.0]},
        },
        "enqueue": [{"name": "learned", "fusion.cf": "mf2", "fusion.cf_params.dim": 6}],
        "objectives": [
            {"metric": "f1@10", "direction": "maximize"},
            {"metric": "novelty@10", "direction": "maximize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 4},
        "out_dir": str(tmp_path / "study"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = _cli(["run", "s.yaml", "--workers", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(tmp_path / "study")
    done = [t for t in study.trials if t.state.name == "COMPLETE" and not is_derived(t)]
    assert len(done) == 4
    workers = {t.user_attrs["moo:worker"]["pid"] for t in done if "moo:worker" in t.user_attrs}
    assert len(workers) == 2, workers  # both processes saw the registrations
    from safetensors.numpy import load_file

    for t in done:
        heads = load_file(str(Path(t.user_attrs["moo:artifact_dir"]) / "heads.safetensors"))
        if t.params["fusion.cf"] == "pop2":
            gamma = t.params["fusion.cf_params.gamma"]
            assert t.user_attrs["moo:backbone"]["params"]["gamma"] == pytest.approx(gamma)
            assert "fusion.cf_params.dim" not in t.params  # a knob only where it acts
        else:  # the learned backbone, trained with the heads at its own size
            dim = t.params["fusion.cf_params.dim"]
            assert heads["cf_tower.u.weight"].shape == (150, dim)
            assert "fusion.cf_params.gamma" not in t.params
        assert 0.0 <= t.user_attrs["moo:metrics"]["val"]["f1@10"] <= 1.0
        config = t.user_attrs["moo:config"]
        assert config["adapter"]["params"]["rank2"] == t.params["adapter.params.rank2"]
        assert config["loss"]["weights"]["bias2"] == t.params["loss.weights.bias2"]
    # the baseline is recorded and, reading the future, is on the reference front
    assert "Oracle2" in study.user_attrs["moo:baselines"]
    front = study.user_attrs["moo:reference_front"]["points"]
    assert "Oracle2" in {p["baseline"] for p in front}
    # the figure is on the page, also when the report is rebuilt by another process
    proc = _cli(["report", str(tmp_path / "study")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (tmp_path / "study" / "index.html").read_text()
    assert 'id="fig-states2"' in html and "Trials per state" in html
    assert len(study.user_attrs["moo:baselines"]["MostPop"]["val"]) > 0
    items = np.load(Path(done[0].user_attrs["moo:artifact_dir"]) / "lists.npz")["test_lists"]
    assert 80 <= items.max() < 90  # the dataset's own knob (90 items, not its default 80)
    # a bad knob of the dataset, the adapter or the backbone names its field
    for section, field, value in [
        ("data", "params", {"n_items": 5}),
        ("adapter", "params", {"rank2": 99}),
        ("fusion", "cf_params", {"gamma": 5.0}),
    ]:
        bad = {**spec, section: {**spec[section], field: value}}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        proc = _cli(["trial", "bad.yaml"], tmp_path)
        name = f"{section}.{field}.{next(iter(value))}"
        assert proc.returncode == 2 and name in proc.stderr, proc.stderr
    # an unknown loss term is named with the closest registered one
    bad = {**spec, "loss": {"weights": {"ranking": 1.0, "bias3": 0.3}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = _cli(["trial", "bad.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "loss.weights.bias3" in proc.stderr and "did you mean 'bias2'" in proc.stderr


def test_a_users_objective_with_its_own_config_runs_with_workers(tmp_path):
    import yaml

    (tmp_path / "house_plugins.py").write_text((REPO / "tests" / "house_plugin.txt").read_text())
    spec = {
        "name": "ring",
        "plugins": ["house_plugins"],
        "objective": "ring2",
        "ring": {"radius": 2.0},
        "search_space": {"ring.angle": {"float": [0.0, 1.5]}},
        "objectives": [
            {"metric": "x2", "direction": "maximize"},
            {"metric": "y2", "direction": "maximize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 8},
        "out_dir": str(tmp_path / "study"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = _cli(["run", "s.yaml", "--workers", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(tmp_path / "study")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 8
    for t in done:  # the objective read its own config: radius 2, the searched angle
        a = t.params["ring.angle"]
        assert t.values == pytest.approx([2 * np.cos(a), 2 * np.sin(a)])
    # the panel it draws: its line printed, its card and every trial's table on the page
    far = max(t.values[0] for t in done)
    assert f"ring: the farthest x2 is {far:.3f} of radius 2.0" in proc.stdout, proc.stdout
    page = (tmp_path / "study" / "index.html").read_text()
    assert '"title":"ring radius"' in page and page.count('"header":["on the ring"') == 8
    # a typo in the objective's own section is named like any spec error
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**spec, "ring": {"radus": 2.0}}))
    proc = _cli(["run", "bad.yaml"], tmp_path)
    assert proc.returncode == 2 and "ring.radus" in proc.stderr, proc.stderr
