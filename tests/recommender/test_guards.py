"""Third-party fits and plugin callables are guarded (#37): the entry that failed is named,
a failed baseline is left out, a failed figure costs that figure, and the study goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from moo_search.drivers import run_study
from moo_search.errors import MooSearchError, TrialFailed
from moo_search.recommender.trial import run_trial
from moo_search.spec import load_spec

from ..helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
ZDT1 = Path(__file__).resolve().parents[2] / "studies" / "zdt1.yaml"


def _study(tmp_path, **over):
    return tiny_spec(
        **{
            "storage": f"sqlite:///{tmp_path}/s.db",
            "out_dir": str(tmp_path / "out"),
            "budget": {"n_trials": 1},
            "train.max_steps": 2,
            **over,
        }
    )


def test_a_plugin_baseline_that_raises_is_left_out_and_the_study_goes_on(tmp_path, caplog):
    from moo_search.recommender.registries import BASELINES

    def broken(ctx):
        raise RuntimeError("no solver today")

    BASELINES.register("Broken", broken)
    try:
        study = run_study(_study(tmp_path))
    finally:
        BASELINES.unregister("Broken")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    baselines = study.user_attrs["moo:baselines"]
    assert "Broken" not in baselines and "EASE" in baselines
    assert "baseline 'Broken' failed (no solver today)" in caplog.text


def test_a_plugin_metric_that_raises_fails_the_trial_naming_it(tmp_path):
    from moo_search.recommender.metrics import MetricDef
    from moo_search.recommender.registries import METRICS

    def boom(lists, users, ctx, rel):
        raise ValueError("division by the universe")

    METRICS.register("boom", MetricDef("boom", "maximize", compute=boom))
    try:
        with pytest.raises(TrialFailed, match=r"metric 'boom@10' raised ValueError"):
            run_trial(tiny_spec(**{"train.max_steps": 2}))
        spec = _study(tmp_path, **{"budget": {"n_trials": 1, "max_failures": 1}})
        with pytest.raises(MooSearchError, match="trials failed in this run"):
            run_study(spec)  # a clear stop after max_failures, not a traceback
    finally:
        METRICS.unregister("boom")
    study = optuna.load_study(study_name="tiny", storage=spec.storage)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and "metric 'boom@10' raised" in failed[0].user_attrs["moo:fail_reason"]


@pytest.mark.parametrize(
    ("term", "says"),
    [
        (lambda b: torch.tensor(float("nan")), "loss term(s) ['mine'] gave nan at the first step"),
        (lambda b: 1 / 0, "loss term 'mine' (loss.weights.mine) raised ZeroDivisionError"),
        (lambda b: np.float64(1.0), "loss term 'mine' (loss.weights.mine) must return a scalar"),
    ],
)
def test_a_loss_term_that_fails_is_named_not_the_learning_rate(term, says):
    from moo_search.recommender.registries import LOSS_TERMS

    LOSS_TERMS.register("mine", term)
    try:
        with pytest.raises(TrialFailed) as e:
            run_trial(tiny_spec(**{"train.max_steps": 3, "loss.weights.mine": 1.0}))
    finally:
        LOSS_TERMS.unregister("mine")
    assert says in str(e.value) and "lower train.lr" not in str(e.value)


def test_a_solver_that_breaks_at_an_extreme_knob_names_the_backbone():
    pytest.importorskip("sansa")
    spec = tiny_spec(
        **{"train.max_steps": 2, "fusion.cf": "sansa", "fusion.cf_params": {"l2": 1e12}}
    )
    with pytest.raises(TrialFailed, match=r"backbone 'sansa' \(fusion.cf\) failed to fit"):
        run_trial(spec)


@pytest.mark.parametrize(
    "build",
    [lambda data: 1 / 0, lambda data: np.zeros(3)],
    ids=["raises", "numpy-array"],
)
def test_a_figure_that_fails_costs_that_figure_not_the_page(tmp_path, caplog, build):
    from moo_search.report import FIGURES, Figure, write_study_report

    spec = load_spec(ZDT1, ["budget.n_trials=30", f"storage=sqlite:///{tmp_path}/z.db"])
    spec = spec.model_copy(update={"out_dir": str(tmp_path)})
    study = run_study(spec)
    FIGURES.register("fig-mine", Figure("fig-mine", "Mine", build))
    try:
        path, _ = write_study_report(spec, study)
    finally:
        FIGURES.unregister("fig-mine")
    page = path.read_text()
    assert "This figure failed to build" in page and '"fig-front"' in page
    assert "figure 'fig-mine' failed" in caplog.text
