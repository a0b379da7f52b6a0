"""How new items are scored (fusion.new_items: history, user, map, blend, auto): each mode
keeps a new item's score its own, leaves the backbone alone on warm items, reads warm items
only, and the choice on validation never reads test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from moo_search.recommender.inference import CatalogScorer, RidgeMap
from moo_search.recommender.new_item_choice import one_se_choice, tune_new_items
from moo_search.recommender.prepare import build_model, history_rows, prepare_data
from moo_search.recommender.zscore import standardise

from ..helpers import tiny_spec

COLD = {"data.split.cold_items": 0.2, "data.split.cold_seed": 3, "train.max_steps": 3}
MODES = ("history", "user", "map", "blend")


@pytest.fixture(scope="module")
def cold():
    from moo_search.recommender.model.tokens import tokenize_cached

    spec = tiny_spec(**COLD, **{"fusion.new_items": "auto"})
    data = prepare_data(spec)
    model, tok, _ = build_model(spec, data)
    items = tokenize_cached(tok, data.item_texts, spec.model.max_item_length)
    users = tokenize_cached(tok, data.user_texts, spec.model.max_user_length)
    scorer = CatalogScorer.encode(
        model, items, users, torch.device("cpu"), history=history_rows(spec, data)
    )
    return spec, data, scorer


def _mode(scorer, mode):
    return replace(
        scorer, new_items=mode, new_item_neighbours=5, _neighbour_sims=None, _ridge_map=None
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_new_items_score_does_not_depend_on_the_other_new_items(cold, mode):
    _, data, scorer = cold
    users = np.arange(25)
    before = _mode(scorer, mode)(users)
    new = data.split.cold_items
    one, others = new[0], new[1:]
    emb = scorer.item_emb.clone()
    emb[torch.as_tensor(others)] = torch.nn.functional.normalize(
        torch.randn(len(others), emb.shape[1], generator=torch.Generator().manual_seed(1)), dim=-1
    )
    after = _mode(replace(scorer, item_emb=emb), mode)(users)
    warm = data.split.warm
    assert np.allclose(before[:, one], after[:, one], atol=1e-5)
    assert np.allclose(before[:, warm], after[:, warm], atol=1e-5)
    assert not np.allclose(before[:, others], after[:, others])


@pytest.mark.parametrize("mode", MODES)
def test_served_at_alpha_zero_every_mode_gives_the_backbone_on_warm_items(cold, mode):
    _, data, scorer = cold
    users = np.arange(30)
    warm = data.split.warm
    zero = _mode(scorer, mode).serving(np.zeros(data.split.n_items, dtype=np.float32))
    fused = zero(users)
    with torch.no_grad():
        r = scorer.model.collaborative(torch.as_tensor(users)).float()
        expect = standardise(r, torch.as_tensor(warm)).numpy()
    assert np.array_equal(fused[:, warm], expect[:, warm])
    assert np.isfinite(fused[:, ~warm]).all() and fused[:, ~warm].std() > 0


def test_the_map_reads_warm_items_only(cold):
    """What a held-out item brings (its text, its backbone column) changes neither the map
    nor what a user's row becomes through it."""
    _, data, scorer = cold
    warm = torch.as_tensor(data.split.warm)
    emb = scorer.item_emb.double()
    fitted = RidgeMap.fit(emb, warm, 1.0)
    noisy = emb.clone()
    noisy[~warm] = torch.randn(int((~warm).sum()), emb.shape[1], dtype=torch.float64)
    assert np.array_equal(fitted.coef, RidgeMap.fit(noisy, warm, 1.0).coef)
    with torch.no_grad():
        rows = scorer.model.collaborative(torch.arange(10)).float()
    other = rows.clone()
    other[:, ~warm] = torch.randn(10, int((~warm).sum()))
    assert torch.equal(fitted.user_vectors(rows), fitted.user_vectors(other))


def test_the_map_recovers_a_linear_backbone_from_text():
    """A backbone whose item scores are linear in the item text is carried to new items
    through the map: each user's map scores of held-out items follow the truth."""
    rng = np.random.default_rng(0)
    emb = torch.as_tensor(rng.normal(size=(400, 16)))
    warm = torch.ones(400, dtype=torch.bool)
    warm[300:] = False
    users = torch.as_tensor(rng.normal(size=(50, 16)))
    truth = users @ emb.T  # r(u, i) = p_u . e_i on every item
    fitted = RidgeMap.fit(emb, warm, 1e-4)
    mapped = fitted.scores(truth, emb)
    new = ~warm
    # per user (what ranks the new items): the truth up to the user's z-scale
    corr = [np.corrcoef(mapped[u, new].numpy(), truth[u, new].numpy())[0, 1] for u in range(50)]
    assert min(corr) > 0.99


def test_one_se_choice_keeps_the_simplest_within_noise_and_the_best_beyond_it():
    rng = np.random.default_rng(0)
    base = rng.random(400)
    near = base + rng.normal(0, 0.05, 400) + 0.002  # best by a hair
    assert one_se_choice([base, near]) == 0
    far = base + 0.1
    assert one_se_choice([base, far]) == 1
    assert one_se_choice([far, base]) == 0


def test_auto_chooses_on_validation_and_never_reads_test(cold, monkeypatch):
    spec, data, scorer = cold
    split = data.split
    real = split.cold_part

    def val_only(name):
        assert name == "val", "new-item choice read the test part"
        return real(name)

    monkeypatch.setattr(split, "cold_part", val_only)
    monkeypatch.setattr(
        split,
        "cold_matrix",
        lambda name, **kw: (
            type(split).cold_matrix(split, "val", **kw)
            if name == "val"
            else pytest.fail("test read")
        ),
    )
    chosen_scorer, knobs = tune_new_items(spec, data, scorer)
    assert knobs["fusion.new_items"] in MODES
    assert chosen_scorer.new_items == knobs["fusion.new_items"]
    if knobs["fusion.new_items"] in ("history", "blend"):
        assert knobs["fusion.new_item_neighbours"] >= 1
    if knobs["fusion.new_items"] in ("map", "blend"):
        assert knobs["fusion.new_item_ridge"] > 0
    # the chosen knobs make a spec that loads
    assert spec.with_params(knobs).fusion.new_items == knobs["fusion.new_items"]


def test_a_fixed_mode_with_fixed_knobs_is_not_tuned(cold):
    spec, data, scorer = cold
    fixed = spec.with_params({"fusion.new_items": "map", "fusion.new_item_ridge": 0.1})
    same, knobs = tune_new_items(fixed, data, _mode(scorer, "map"))
    assert knobs == {} and same.new_items == "map"


def test_the_content_phase_trains_the_content_term_alone_and_lowers_it():
    """The first train.content_steps steps hold the content term only, and on the planted
    data it falls; then the joint phase brings the other terms in."""
    from moo_search import run_trial

    spec = tiny_spec(
        **{
            **COLD,
            "train.max_steps": 40,
            "train.content_steps": 30,
            "train.lr": 3e-3,
            "loss.weights.content": 0.5,
            "fusion.alpha": 0.3,
        },
    )
    result = run_trial(spec)
    terms = result.history["terms"]
    assert all(set(t) == {"content"} for t in terms[:30])
    assert {"ranking", "content"} <= set(terms[30])
    content = [t["content"] for t in terms[:30]]
    assert np.mean(content[-5:]) < np.mean(content[:5]) - 0.05, content
