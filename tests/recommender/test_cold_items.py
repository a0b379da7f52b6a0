"""The item-cold protocol: held-out items never reach training, new items are scored from
text alone, content baselines, and a reference front over the knobs' whole range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from moo_search import DataError, run_trial
from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
from moo_search.recommender.data.split import make_split
from moo_search.recommender.inference import CatalogScorer
from moo_search.recommender.metrics import is_known_metric
from moo_search.recommender.model.backbone_cache import split_fingerprint
from moo_search.recommender.model.content import content_knn, tfidf_item_vectors
from moo_search.recommender.prepare import build_model, prepare_data
from moo_search.recommender.reference import FULL_RANGE, reference_grid

from ..helpers import tiny_spec

COLD = {"data.split.cold_items": 0.2, "data.split.cold_seed": 3}


def test_held_out_items_split_in_half_and_leave_every_warm_frame():
    data = prepare_data(tiny_spec(**COLD))
    split = data.split
    new = split.cold_items
    assert len(split.cold_val_items) and len(split.cold_test_items)
    assert abs(len(split.cold_val_items) - len(split.cold_test_items)) <= 1
    assert not set(split.cold_val_items) & set(split.cold_test_items)
    for part in ("train", "val", "test"):
        assert not np.isin(split.part(part)["item"], new).any(), part
    for part in ("val", "test"):
        items, df = split.cold_part(part)
        assert len(df) and np.isin(df["item"], items).all()
    # every interaction is in exactly one frame
    total = sum(len(split.part(p)) for p in ("train", "val", "test"))
    total += sum(len(split.cold_part(p)[1]) for p in ("val", "test"))
    assert total == len(data.ds.interactions)
    # what a trial trains on: no held-out item has a train count, a like-rate of its own or
    # an EASE weight, and the closed-form backbone's cache key changes with the held-out set
    _, item_users = split.train_counts()
    assert (item_users[new] == 0).all()
    rates = data.like_rates
    assert np.allclose(rates.item_logit[new], rates.item_logit[new][0])
    other = make_split(data.ds, cold_items=0.2, cold_seed=4)
    assert split_fingerprint(split) != split_fingerprint(other)
    assert split.fingerprint_parts()["cold_val_items"] == len(split.cold_val_items)


def test_a_held_out_share_that_leaves_too_few_items_names_the_field():
    data = prepare_data(tiny_spec())
    with pytest.raises(DataError, match=r"data\.split\.cold_items"):
        make_split(data.ds, cold_items=0.001)


def test_new_item_metrics_are_known_names_for_objectives():
    for name in ("cold_item/recall@20", "cold_item/ndcg@20", "mixed/precision@10"):
        assert is_known_metric(name), name
    assert is_known_metric("mixed/new_share@10")
    assert not is_known_metric("new_share@10")  # only meaningful with new items in the list
    assert not is_known_metric("cold_item/ild@10")


@pytest.fixture(scope="module")
def cold_model():
    spec = tiny_spec(**COLD, **{"train.max_steps": 5})
    data = prepare_data(spec)
    model, tok, _ = build_model(spec, data)
    return spec, data, model, tok


def _scorer(spec, data, model, tok):
    from moo_search.recommender.model.tokens import tokenize_cached
    from moo_search.recommender.prepare import history_rows

    items = tokenize_cached(tok, data.item_texts, spec.model.max_item_length)
    users = tokenize_cached(tok, data.user_texts, spec.model.max_user_length)
    return CatalogScorer.encode(
        model,
        items,
        users,
        torch.device("cpu"),
        history=history_rows(spec, data),
        new_items=spec.fusion,
    )


def test_a_new_items_score_does_not_depend_on_the_other_new_items(cold_model):
    spec, data, model, tok = cold_model
    scorer = _scorer(spec, data, model, tok)
    users = np.arange(20)
    before = scorer(users)
    new = data.split.cold_items
    one, others = new[0], new[1:]
    scorer.item_emb[torch.as_tensor(others)] = torch.nn.functional.normalize(
        torch.randn(len(others), scorer.item_emb.shape[1]), dim=-1
    )
    scorer._neighbour_sims = None
    after = scorer(users)
    assert np.allclose(before[:, one], after[:, one], atol=1e-5)
    warm = data.split.warm
    assert np.allclose(before[:, warm], after[:, warm], atol=1e-5)
    assert not np.allclose(before[:, others], after[:, others])


def test_training_never_sees_a_new_item_not_even_as_a_negative(cold_model):
    from moo_search.recommender.model.tokens import tokenize_cached
    from moo_search.recommender.train._steps import batch_scores as _batch
    from moo_search.recommender.train._steps import pairs_on as _pairs_on
    from moo_search.recommender.train.loop import TrainData, TrainHistory

    spec, data, model, tok = cold_model
    items = tokenize_cached(tok, data.item_texts, spec.model.max_item_length)
    users = tokenize_cached(tok, data.user_texts, spec.model.max_user_length)
    tr = data.split.train
    tdata = TrainData(
        users=tr["user"].to_numpy(),
        items=tr["item"].to_numpy(),
        clicks=np.ones(len(tr), dtype=np.float32),
        user_tokens=users,
        item_tokens=items,
        features=torch.as_tensor(data.features),
        self_information=torch.zeros(data.ds.n_items),
    )
    device = torch.device("cpu")
    cache = model.encode_table(items, device)
    b = _batch(
        model,
        tdata,
        _pairs_on(tdata, device),
        np.arange(8),
        cache,
        TrainHistory(),
        spec.loss,
        spec.train,
        torch.Generator().manual_seed(0),
    )
    probs = torch.softmax(b.fused, -1)
    assert float(probs.detach()[:, torch.as_tensor(data.split.cold_items)].max()) < 1e-12


def test_alpha_zero_reproduces_the_backbone_on_warm_items_under_the_cold_protocol():
    spec = tiny_spec(**COLD, **{"fusion.alpha": 0.0, "fusion.cf": "ease", "train.max_steps": 2})
    result = run_trial(spec)
    data = prepare_data(spec)
    ease = evaluate_baselines(BaselineContext.of(spec, data), names=("EASE",), ctr=False)
    for part in ("val", "test"):
        for m in ("precision@10", "ndcg@10", "coverage@10"):
            assert result.metrics[part][m] == pytest.approx(ease["EASE"][part][m]), (part, m)
        # no text tower: new items cannot be scored and never enter a mixed list
        assert result.metrics[part]["mixed/new_share@10"] == 0.0


def test_tfidf_ranks_a_planted_text_match_first():
    texts = [
        "zebra stripes savanna",
        "zebra herd savanna",
        "harbour ship sail",
        "violin concerto orchestra",
        "ship anchor harbour",
        "zebra foal savanna",  # new item matching the user's history
        "ferry harbour ship",  # new item matching the other user's history
        "tractor harvest field",  # new item
    ]
    warm = np.array([True] * 5 + [False] * 3)
    x = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0, 0, 0]], float))
    score = content_knn(tfidf_item_vectors(texts), x, warm)
    s = score(np.array([0, 1]))
    new = np.flatnonzero(~warm)
    assert new[np.argmax(s[0, new])] == 5
    assert new[np.argmax(s[1, new])] == 6


def test_content_baselines_are_recorded_and_score_new_items():
    spec = tiny_spec(**COLD)
    data = prepare_data(spec)
    ctx = BaselineContext.of(spec, data)
    res = evaluate_baselines(ctx)
    assert {"TF-IDF", "Frozen encoder", "Hybrid"} <= set(res)
    for name in ("TF-IDF", "Frozen encoder", "Hybrid"):
        assert res[name]["test"]["cold_item/recall@10"] > 0
        assert ctx.tuned[name]["tuned_on"].startswith("val")
    # EASE has nothing for a new item: it never recommends one in the mixed catalog
    assert res["EASE"]["test"]["mixed/new_share@10"] == 0.0
    assert res["Hybrid"]["test"]["mixed/new_share@10"] > 0.0
    # the hybrid is EASE on the warm catalog
    assert res["Hybrid"]["test"]["precision@10"] == pytest.approx(
        res["EASE"]["test"]["precision@10"]
    )
    # without held-out items the hybrid would be EASE again: not recorded
    warm_only = evaluate_baselines(BaselineContext.of(tiny_spec(), prepare_data(tiny_spec())))
    assert "Hybrid" not in warm_only and "TF-IDF" in warm_only


def test_the_reference_grid_covers_each_knobs_whole_range_whatever_the_study_searches():
    narrow = tiny_spec(**{"search_space": {"rerank.pop_penalty": {"float": [0.0, 0.3]}}})
    grid = reference_grid(narrow)
    for knob, (lo, hi) in FULL_RANGE.items():
        values = [g[knob] for g in grid]
        assert min(values) == pytest.approx(lo) and max(values) == pytest.approx(hi), knob
    wide = tiny_spec(**{"search_space": {"rerank.pop_penalty": {"float": [0.0, 2.0]}}})
    assert max(g["rerank.pop_penalty"] for g in reference_grid(wide)) == pytest.approx(2.0)


def test_cold_item_ties_are_not_broken_by_item_id():
    """A model that gives every new item one score must rank them at chance, not by id."""
    from moo_search.recommender.evaluate import cold_item_lists

    data = prepare_data(tiny_spec(**COLD))
    split = data.split

    def constant(users):
        return np.zeros((len(users), split.n_items))

    _, lists, _ = cold_item_lists(constant, split, "test", 3)
    firsts = pd.Series(lists[:, 0]).value_counts()
    assert len(firsts) > 1  # not the same lowest-id item first for everyone


@pytest.mark.parametrize("n", [3, 10, None])
def test_blockwise_new_item_neighbours_equal_the_dense_ones(monkeypatch, n):
    """The text neighbours found a block of rows at a time (and, with every warm item, from
    the embeddings alone) score a history exactly as the dense items x items matrix did."""
    import scipy.sparse as sp

    from moo_search.recommender import inference
    from moo_search.recommender.inference import nearest_only, text_neighbours

    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(57, 8), dim=-1)
    warm = torch.ones(57, dtype=torch.bool)
    warm[::5] = False
    sim = emb.double() @ emb.double().T  # the dense path: own and new-item columns zeroed
    sim.fill_diagonal_(0.0)
    sim[:, ~warm] = 0.0
    dense = nearest_only(sim, n, warm).numpy()
    rows = sp.random(9, 57, density=0.2, random_state=0, format="csr")
    monkeypatch.setattr(inference, "NEIGHBOUR_BLOCK_BYTES", 8 * 57 * 4)  # blocks of 4 rows
    got = text_neighbours(emb, n, warm)
    want = rows.toarray() @ dense.T
    np.testing.assert_allclose(got.of_history(rows), want, atol=1e-12)
    items = np.array([0, 5, 7, 56])
    np.testing.assert_allclose(got.of_history(rows, items), want[:, items], atol=1e-12)
    if n is not None:  # memory: n entries a row, not one per item pair
        assert got.sparse.nnz <= 57 * n
    else:
        assert got.sparse is None


@pytest.mark.parametrize("n", [1, 3, 10])
def test_fewer_neighbours_taken_from_the_deepest_search_equal_their_own_search(n):
    """Validation tries each neighbour count from one search at the largest count: the
    first n kept neighbours of each item are the n nearest."""
    from moo_search.recommender.inference import text_neighbours

    torch.manual_seed(1)
    emb = torch.nn.functional.normalize(torch.randn(40, 6), dim=-1)
    warm = torch.ones(40, dtype=torch.bool)
    warm[::4] = False
    deep = text_neighbours(emb, 12, warm).first(n)
    own = text_neighbours(emb, n, warm)
    assert deep.sparse.nnz == own.sparse.nnz == 40 * n
    np.testing.assert_array_equal(deep.sparse.toarray(), own.sparse.toarray())
