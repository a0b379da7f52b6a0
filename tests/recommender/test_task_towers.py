"""The business-task heads read the towers: their trained part (TaskTowers) gets gradients from
the task terms, carries them to the text tower, stays zero for a task nobody trains, and the
validation fit works around it without scaling it away; new items get the tasks' metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ..helpers import run_kept, tiny_spec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COLD = {"data.split.cold_items": 0.2, "data.split.cold_seed": 3, "fusion.alpha": 0.3}


def _trained(**overrides: object) -> object:
    from moo_search.recommender.trial import Trial

    trial = Trial(tiny_spec(**{"fusion.alpha": 0.3, "train.max_steps": 8, **overrides}))
    trial.begin()
    trial.prepare()
    trial.build()
    trial.fit()
    return trial


def test_the_click_task_alone_moves_the_text_tower():
    """With the click term alone, the tower's LoRA B matrices (zero at the start, so weight
    decay cannot move them) change: the click term reads the backbone's score and a detached
    semantic score, so its gradient reaches the tower only through the task towers."""
    trial = _trained(
        **{"loss.weights.ranking": 0.0, "loss.weights.click": 1.0, "loss.weights.ctr": 0.0}
    )
    model = trial.model  # type: ignore[attr-defined]
    b = [p for n, p in model.encoder.named_parameters() if "lora_B" in n]
    assert b and any(float(p.detach().abs().max()) > 0 for p in b)
    out = model.task_towers.out.detach()
    assert float(out[0].abs().max()) > 0  # click trained
    assert float(out[1:].abs().max()) == 0  # conversion and satisfaction untouched


def test_a_task_with_weight_zero_adds_nothing_and_the_tower_stays_put():
    """Ranking alone: every task output stays zero; with no task and no tower-reading term
    either (alpha > 0 but only the click term at weight 0 besides ranking), the task towers
    predict exactly the linear heads."""
    trial = _trained(**{"loss.weights.ctr": 0.0, "loss.weights.click": 0.0})
    model = trial.model  # type: ignore[attr-defined]
    assert float(model.task_towers.out.detach().abs().max()) == 0
    feats = torch.randn(5, 8)
    emb = torch.nn.functional.normalize(torch.randn(5, model.task_towers.text_dim), dim=-1)
    out = model.task_outputs(feats, emb, emb)
    assert torch.allclose(out["click"], model.tasks.click_logit(feats))


def _first_task_losses() -> dict[int, dict[str, float]]:
    """The first steps' mean click and satisfaction losses without a warm-up (0) and after
    60 warm-up steps."""
    first = {}
    for steps in (0, 60):
        spec = tiny_spec(
            **{
                "loss.weights.click": 1.0,
                "loss.weights.satisfaction": 1.0,
                "train.max_steps": 5,
                "train.task_warmup_steps": steps,
            }
        )
        res = run_kept(spec)
        assert res.history["task_warmup_steps"] == steps
        terms = res.history["terms"]
        first[steps] = {k: np.mean([t[k] for t in terms]) for k in ("click", "satisfaction")}
    return first


def test_the_warm_up_fits_the_task_heads_before_the_task_terms_join():
    """The task heads' warm-up (train pairs over the tower's fixed embeddings) leaves the
    first steps' task losses lower than heads that start from their count baselines."""
    first = _first_task_losses()
    assert first[60]["click"] < first[0]["click"]
    assert first[60]["satisfaction"] < first[0]["satisfaction"]


def test_the_warm_up_of_a_large_catalog_z_scores_pair_by_pair_over_a_sample_of_users(
    monkeypatch,
):
    """Where the backbone's rows are not kept (a scores budget of 0 stands in for a large
    catalog), the warm-up z-scores each pair on its own and draws its pairs from a sample of
    users (PAIRWISE_USERS); it still fits the heads: the first steps' losses are lower."""
    import moo_search.recommender.train.task_warmup as tw

    monkeypatch.setenv("MOO_SEARCH_SCORES_GB", "0")
    monkeypatch.setattr(tw, "PAIRWISE_USERS", 20)
    pools = []
    pool = tw._pool
    monkeypatch.setattr(
        tw,
        "_pool",
        lambda m, pairs, seed: pools.append((pairs, pool(m, pairs, seed))) or pools[-1][1],
    )
    monkeypatch.setattr(tw, "_tables", lambda *a: pytest.fail("rows tabled on a large catalog"))
    first = _first_task_losses()
    ((pairs, drawn),) = pools  # the one warm-up that ran
    assert len(torch.unique(pairs.users[drawn])) == 20 < len(torch.unique(pairs.users))
    assert first[60]["click"] < first[0]["click"]
    assert first[60]["satisfaction"] < first[0]["satisfaction"]


def test_the_validation_fit_cannot_scale_away_the_trained_output():
    """The linear head is fit around the trained output (an offset, coefficient 1): fed an
    offset that ranks the pairs backwards, the fit over noise features cannot undo it."""
    from moo_search.recommender.metrics import auc
    from moo_search.recommender.train.ctr import fit_logistic

    rng = np.random.default_rng(0)
    signal = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-2 * signal))).astype(np.float32)
    x = torch.as_tensor(rng.normal(size=(4000, 3)), dtype=torch.float32)
    yt = torch.as_tensor(y)
    for sign, better in ((1.0, True), (-1.0, False)):
        head = torch.nn.Linear(3, 1)
        offset = torch.as_tensor(sign * 2 * signal, dtype=torch.float32)
        fit_logistic(head, x, yt, offset=offset)
        with torch.no_grad():
            pred = (head(x).squeeze(-1) + offset).numpy()
        assert (auc(y, pred) > 0.7) == better
        assert float(head.weight.abs().max()) < 0.2  # the noise features stay near zero


def test_cold_task_pairs_are_the_parts_new_items():
    from moo_search.recommender.model.tasks import cold_task_pairs
    from moo_search.recommender.prepare import prepare_data

    split = prepare_data(tiny_spec(**COLD)).split
    held, df = split.cold_part("test")
    pairs = cold_task_pairs(split, "test", "click", negatives=3, seed=1)
    n = len(df)
    assert n and len(pairs.y) == 4 * n and pairs.y[:n].all() and not pairs.y[n:].any()
    assert set(pairs.items.tolist()) <= set(np.asarray(held).tolist())
    taken = set(zip(df["user"].tolist(), df["item"].tolist()))
    assert not any((u, i) in taken for u, i in zip(pairs.users[n:], pairs.items[n:]))
    again = cold_task_pairs(split, "test", "click", negatives=3, seed=1)
    assert np.array_equal(pairs.items, again.items)
    rated = cold_task_pairs(split, "test", "satisfaction")
    assert np.array_equal(rated.y, df["rating"].to_numpy())


def test_new_items_have_the_business_metrics():
    from moo_search.recommender.metrics import is_known_metric, is_task_metric, metric_direction
    from moo_search.recommender.trial import run_trial

    for name, direction in (
        ("cold_item/click_auc", "maximize"),
        ("cold_item/conversion_auc", "maximize"),
        ("cold_item/satisfaction_rmse", "minimize"),
        ("mixed/click_auc", "maximize"),
        ("mixed/satisfaction_rmse", "minimize"),
    ):
        assert is_known_metric(name) and is_task_metric(name)
        assert metric_direction(name) == direction
    for name in ("cold_item/ctr_auc", "mixed/ctr_auc", "mixed/click_auc@10", "cold_item/recall"):
        assert not is_known_metric(name)
    spec = tiny_spec(**COLD, **{"train.max_steps": 30, "loss.weights.click": 0.5})
    res = run_trial(spec)
    for part in ("val", "test"):
        m = res.metrics[part]
        assert m["cold_item/satisfaction_rmse"] > 0 and "cold_item/conversion_auc" in m
        # mixed/: warm and new items' pairs together, so its error lies between theirs
        lo, hi = sorted([m["satisfaction_rmse"], m["cold_item/satisfaction_rmse"]])
        assert lo <= m["mixed/satisfaction_rmse"] <= hi
        assert 0 < m["mixed/click_auc"] < 1 and "mixed/conversion_logloss" in m
    # planted: users take the genres they like, and a new item's genre is in its text only;
    # the counts know nothing of a new item (every one has the global rates)
    from moo_search.recommender.baselines.cold_tasks import cold_task_baselines
    from moo_search.recommender.baselines.ranking import BaselineContext
    from moo_search.recommender.prepare import prepare_data

    counts = cold_task_baselines(BaselineContext.of(spec, prepare_data(spec)))["test"]["Counts"]
    assert counts["cold_item/click_auc"] == 0.5
    assert res.metrics["test"]["cold_item/click_auc"] > 0.65


def test_a_config_stored_before_the_task_towers_keeps_linear_heads():
    """A stored trial config is a full dump of the loss fields; one without task_item_dropout
    was written before the towers and loads with task_towers false (it re-runs as it ran:
    tests/house/test_old_studies.py); a spec a person writes keeps the towers."""
    from moo_search.recommender.config._compat import FULL_LOSS_DUMP

    stored = tiny_spec().model_dump(mode="json")
    stored["loss"] = {k: stored["loss"][k] for k in FULL_LOSS_DUMP}
    from moo_search.spec import spec_from_dict

    assert spec_from_dict(stored).loss.task_towers is False
    assert tiny_spec(**{"loss.weights.click": 0.5}).loss.task_towers is True
    stored["loss"]["task_item_dropout"] = 0.25
    assert spec_from_dict(stored).loss.task_towers is True


def test_conversion_is_one_word_and_ctr_still_reads():
    """``loss.weights.conversion`` is the term's name; ``ctr`` (a spec, a stored config, a
    study's stored parameter ``loss.weights.ctr``) maps to it at load."""
    from moo_search.recommender.config import LossWeights
    from moo_search.recommender.registries import LOSS_TERMS

    assert "conversion" in LOSS_TERMS.names() and "ctr" not in LOSS_TERMS.names()
    old = tiny_spec(**{"loss.weights": {"ranking": 1.0, "ctr": 0.7}})
    assert old.loss.weights.of("conversion") == 0.7 == old.loss.weights.of("ctr")
    # a stored parameter of an older study, set over a full dump that has the new name
    resumed = tiny_spec().with_params({"loss.weights.ctr": 0.3})
    assert resumed.loss.weights.of("conversion") == 0.3
    assert "ctr" not in resumed.loss.weights.model_dump()
    assert LossWeights().of("conversion") == 0.2


def test_a_cold_business_study_records_the_new_item_task_baselines_and_a_reference_front(
    tmp_path,
):
    """A study whose objectives are new items' tasks records them for the count and content
    baselines (the counts' click AUC is 0.5: they know nothing of a new item), and its
    reference front pairs each ranking baseline with those: a content baseline with its own,
    the rest with the counts'."""
    from moo_search.drivers import run_study

    spec = tiny_spec(
        **COLD,
        **{
            "train.max_steps": 3,
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/study.db",
            "search_space": {"loss.weights.click": {"float": [0.0, 1.0]}},
            "objectives": [
                {"metric": "cold_item/click_auc", "direction": "maximize"},
                {"metric": "cold_item/conversion_auc", "direction": "maximize"},
                {"metric": "precision@10", "direction": "maximize"},
            ],
            "budget": {"n_trials": 2},
        },
    )
    study = run_study(spec)
    rows = study.user_attrs["moo:baselines"]
    for part in ("val", "test"):
        assert rows["Counts"][part]["cold_item/click_auc"] == 0.5
        for name in ("TF-IDF", "Frozen encoder"):
            assert 0 < rows[name][part]["cold_item/click_auc"] < 1
            assert rows[name][part]["cold_item/satisfaction_rmse"] > 0
            assert "precision@10" in rows[name][part]  # beside its ranking metrics
    points = study.user_attrs["moo:reference_front"]["points"]
    assert points
    for p in points:
        want = rows[p["baseline"] if p["baseline"] in ("TF-IDF", "Frozen encoder") else "Counts"]
        for part in ("val", "test"):
            assert p[part]["cold_item/click_auc"] == want[part]["cold_item/click_auc"]
