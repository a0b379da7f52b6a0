"""The strong collaborative backbone, the CTR head and the reference front (issue 9)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from moo_search import pareto
from moo_search.drivers import run_study
from moo_search.recommender.baselines.ranking import (
    BaselineContext,
    evaluate_baselines,
    like_rate_ctr,
)
from moo_search.recommender.evaluate import evaluate_lists
from moo_search.recommender.model.backbones import backbone_weights, ease_weights
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.reference import DEFAULT_GRID, reference_grid, rerank_grid
from moo_search.recommender.trial import run_trial

from ..helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_ease_closed_form_matches_a_direct_constrained_solve():
    """EASE's B solves min ||X - XB||^2 + lam ||B||^2 s.t. diag(B) = 0: column j is the ridge
    regression of item j on every other item (Steck 2019), solved here one column at a time."""
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    lam = 3.0
    b = ease_weights(sp.csr_matrix(x), lam)
    for j in range(12):
        others = [k for k in range(12) if k != j]
        xo = x[:, others]
        direct = np.linalg.solve(xo.T @ xo + lam * np.eye(11), xo.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], direct, rtol=1e-4, atol=1e-5)
        assert b[j, j] == 0.0


@pytest.mark.parametrize("cf,tail_weight", [("ease", 1.0), ("itemknn", 1.0), ("ease", 5.0)])
def test_alpha_zero_reproduces_the_backbones_lists_exactly(cf, tail_weight, tmp_path):
    spec = tiny_spec(
        **{
            "fusion.cf": cf,
            "fusion.alpha": 0.0,
            "fusion.tail_weight": tail_weight,
            "train.max_steps": 3,
        }
    )
    result = run_trial(spec, artifact_dir=tmp_path)
    data = prepare_data(spec)
    w, _ = backbone_weights(cf, split=data.split, features=data.features, eval_cfg=spec.eval)
    assert w is not None
    x = data.split.matrix("train").astype(np.float32).tocsr()
    metrics, lists = evaluate_lists(
        lambda users: np.asarray(x[users] @ w),
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        rerank_cfg=spec.rerank,
        features=data.features,
    )
    saved = np.load(tmp_path / "lists.npz")
    for part in ("val", "test"):
        np.testing.assert_array_equal(saved[f"{part}_users"], lists[part][0])
        np.testing.assert_array_equal(saved[f"{part}_lists"], lists[part][1])
        assert result.metrics[part]["precision@10"] == metrics[part]["precision@10"]


def test_tail_weight_raises_the_text_towers_weight_on_tail_items_only():
    """a_i = alpha on the popular head (the tail/ slice's head), min(1, alpha * w) elsewhere;
    fused scores follow a_i item by item."""
    import torch

    from moo_search.recommender.metrics import head_items
    from moo_search.recommender.prepare import build_model, item_alpha
    from moo_search.recommender.zscore import standardise

    spec = tiny_spec(**{"fusion.alpha": 0.3, "fusion.tail_weight": 2.5})
    data = prepare_data(spec)
    a = item_alpha(spec, data)
    head = head_items(data.split.train_counts()[1])
    assert head.any() and (~head).any()
    np.testing.assert_allclose(a[head], 0.3)
    np.testing.assert_allclose(a[~head], 0.75)
    assert item_alpha(spec.with_params({"fusion.tail_weight": 10.0}), data)[~head].max() == 1.0
    model, _, _ = build_model(spec, data)
    rng = torch.Generator().manual_seed(0)
    s, r = torch.randn(4, len(a), generator=rng), torch.randn(4, len(a), generator=rng)
    want = torch.as_tensor(a) * standardise(s) + (1 - torch.as_tensor(a)) * standardise(r)
    torch.testing.assert_close(model.fuse(s, r), want)


def test_tuned_ease_is_a_baseline_and_beats_mostpop():
    spec = tiny_spec()
    data = prepare_data(spec)
    res = evaluate_baselines(BaselineContext.of(spec, data), names=("MostPop", "EASE"))
    assert res["EASE"]["test"]["ndcg@10"] > res["MostPop"]["test"]["ndcg@10"]
    assert {"ctr_auc", "ctr_logloss"} <= set(res["LikeRate"]["test"])
    assert res["EASE"]["val"]["cost/seconds"] > 0


def test_ctr_head_beats_the_like_rate_baseline_on_planted_effects():
    """Synthetic clicks = the user likes one of the item's genres: per-user and per-item rates
    (what the count baseline knows) plus a user x item effect the collaborative score sees."""
    spec = tiny_spec(**{"fusion.cf": "ease", "fusion.alpha": 0.2, "train.max_steps": 10})
    result = run_trial(spec)
    base = like_rate_ctr(prepare_data(spec).split)
    for part in ("val", "test"):
        assert result.metrics[part]["ctr_auc"] > base[part]["ctr_auc"] + 0.02, (
            result.metrics[part]["ctr_auc"],
            base[part]["ctr_auc"],
        )
    assert result.history["ctr_fit_logloss"] < 0.69  # fit to convergence, better than a coin


def test_rerank_grid_uses_the_searched_knobs_or_the_default():
    plain = tiny_spec()
    assert len(rerank_grid(plain)) == np.prod([len(v) for v in DEFAULT_GRID.values()])
    searched = tiny_spec(**{"search_space": {"rerank.mmr_lambda": {"float": [0.5, 1.0]}}})
    grid = rerank_grid(searched)
    assert [g["rerank.mmr_lambda"] for g in grid] == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0])
    assert {g["rerank.pop_penalty"] for g in grid} == {searched.rerank.pop_penalty}


def test_fine_tunes_are_also_served_at_the_searched_fusion_weights():
    from moo_search.recommender.objective import variant_grid

    space = {"fusion.alpha": {"float": [0.0, 0.3]}, "fusion.tail_weight": {"float": [1.0, 4.0]}}
    spec = tiny_spec(
        **{
            "search_space": space,
            "fusion.alpha": 0.1,
            "fusion.tail_weight": 2.0,
            "fusion.sweep": True,
        }
    )
    grid = variant_grid(spec)
    # one weight at a time, 4 points of its range but the trial's own (and alpha 0: no tower)
    assert [g["fusion.serve_alpha"] for g in grid if "fusion.serve_alpha" in g] == pytest.approx(
        [0.2, 0.3]
    )
    assert [g["fusion.serve_tail_weight"] for g in grid if "fusion.serve_tail_weight" in g] == [
        1.0,
        3.0,
        4.0,
    ]
    assert all(len(g) == 1 for g in grid)
    assert variant_grid(spec.with_params({"fusion.alpha": 0.0})) == []  # nothing to serve
    assert variant_grid(spec.with_params({"fusion.sweep": False})) == []


def test_a_study_without_rerank_knobs_stores_a_nondominated_reference_front(tmp_path):
    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/study.db",
            "search_space": {"fusion.alpha": {"float": [0.0, 0.5]}},
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "novelty@10", "direction": "maximize"},
            ],
            "budget": {"n_trials": 2},
        }
    )
    study = run_study(spec)
    stored = study.user_attrs["moo:reference_front"]
    # eight baselines (six classic, two content) x the full-range grid
    assert stored["evaluated"] == 8 * len(reference_grid(spec))
    points = stored["points"]
    assert points and {p["baseline"] for p in points} <= {
        "Random",
        "MostPop",
        "ItemKNN",
        "BPR",
        "ALS",
        "EASE",
        "TF-IDF",
        "Frozen encoder",
    }
    F = np.array([[p["val"]["precision@10"], p["val"]["novelty@10"]] for p in points])
    assert pareto.pareto_mask(F, ["maximize", "maximize"]).all()
    assert all({"precision@10", "novelty@10"} <= set(p["test"]) for p in points)
    # no re-ranking knob is searched: no re-ranked variants are recorded
    assert not [t for t in study.trials if "moo:derived_from" in t.user_attrs]
    from moo_search.report import collect

    data = collect(study)
    assert data.reference_hv is not None and data.front_undominated is not None
    assert "reference front" in data.comparison_lines()[0]


def test_trials_and_ease_record_per_user_test_hits_that_pair_up(tmp_path):
    """Every trial (variants too) and EASE record, per test user, the relevant items in their
    top 10: the means are exactly the recorded precision@10 and tail/precision@10, and the
    report pairs the front with EASE user by user (a difference with its interval)."""
    from moo_search.report import collect
    from moo_search.study import unpack_counts

    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/study.db",
            "search_space": {
                "fusion.alpha": {"float": [0.1, 0.5]},
                "rerank.mmr_lambda": {"float": [0.5, 1.0]},
            },
            "budget": {"n_trials": 2},
        }
    )
    study = run_study(spec)
    recorded = study.user_attrs["moo:baseline_test_hits"]
    tail_users = unpack_counts(recorded["tail_users"]).astype(bool)
    assert len(tail_users) == recorded["n_users"] and 0 < tail_users.sum() < len(tail_users)

    def means(hits):
        return (
            unpack_counts(hits["all"]).mean() / hits["k"],
            unpack_counts(hits["tail"])[tail_users].mean() / hits["k"],
        )

    ease = study.user_attrs["moo:baselines"]["EASE"]["test"]
    assert means(recorded["EASE"]) == pytest.approx(
        (ease["precision@10"], ease["tail/precision@10"])
    )
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert any("moo:derived_from" in t.user_attrs for t in done)
    for t in done:
        m = t.user_attrs["moo:metrics"]["test"]
        assert means(t.user_attrs["moo:test_hits"]) == pytest.approx(
            (m["precision@10"], m.get("tail/precision@10", 0.0))
        )
    data = collect(study)
    front = data.rows[data.rows["pareto"]]
    paired = data.panel.facts["vs_trials"]  # the recommender's panel: every front trial
    for n, p in zip(front["number"], front["test:precision@10"]):
        mean, lo, hi = paired[int(n)]["all"]
        assert lo <= mean <= hi and mean == pytest.approx(p - ease["precision@10"])
        assert data.panel.trial_tables[int(n)].header[0] == "test, minus EASE (same users)"
    top = data.panel.facts["vs_baseline"]  # the front's accuracy end, as header and CLI show
    assert top["trial"] == int(front.loc[front["val:precision@10"].idxmax(), "number"])
    assert "minus EASE on test, paired by user" in data.comparison_lines()[2]
    # every fine-tune's (not variant's) test conversion AUC against the like-rate baseline's
    like = study.user_attrs["moo:baselines"]["LikeRate"]["test"]["conversion_auc"]
    aucs = [t.user_attrs["moo:metrics"]["test"]["conversion_auc"] for t in done]
    aucs = [a for t, a in zip(done, aucs) if "moo:derived_from" not in t.user_attrs]
    ctr = data.panel.facts["ctr_vs_baseline"]
    assert ctr["n"] == len(aucs) == 2 and ctr["baseline"] == like
    assert (ctr["min"], ctr["max"]) == (min(aucs), max(aucs))
    assert ctr["above"] == sum(a > like for a in aucs)
    lines = data.comparison_lines()
    assert f"above it: {ctr['above']}/2" in lines[5] and lines[5].startswith("conversion_auc")
    # the honest reference front: both fronts judged on test too, and who wins, said plainly
    assert lines[3].startswith("on test (both fronts chosen on validation): hypervolume study")
    assert lines[4].startswith("larger hypervolume: ")
    assert ("the study on validation" in lines[4]) == (data.hypervolume > data.reference_hv)


def test_a_study_run_before_conversion_auc_is_compared_by_its_ctr_auc():
    """The like-rate line reads conversion_auc; a study stored before that name (ctr_auc in
    its trials and baseline) is still compared, under its own name."""
    import types

    import pandas as pd

    from moo_search.recommender.records import _score_against, _score_line

    rows = pd.DataFrame({"state": ["COMPLETE"] * 3, "test:ctr_auc": [0.70, 0.74, 0.71]})
    old = types.SimpleNamespace(baselines={"LikeRate": {"test": {"ctr_auc": 0.72}}}, rows=rows)
    s = _score_against(old)
    assert s is not None and (s["metric"], s["n"], s["above"]) == ("ctr_auc", 3, 1)
    assert _score_line(s).startswith("ctr_auc (test) of the 3 fine-tunes")
    new = types.SimpleNamespace(
        baselines={"LikeRate": {"test": {"ctr_auc": 0.72, "conversion_auc": 0.72}}},
        rows=rows.assign(**{"test:conversion_auc": [0.73, 0.74, 0.75]}),
    )
    assert _score_against(new)["above"] == 3
    assert _score_line(_score_against(new)).startswith("conversion_auc (test)")
