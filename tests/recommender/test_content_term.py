"""The content term's knobs (loss.content_positives, loss.content_hard_negatives): hard
negatives are the items the frozen text tower puts nearest that the backbone does not, and a
content phase with several positives and hard negatives still lowers the content loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moo_search.errors import SpecError
from moo_search.recommender.prepare import (
    HARD_EXCLUDE,
    _backbone_neighbours,
    build_model,
    frozen_item_embeddings,
    item_hard_negatives,
    prepare_data,
)

from ..helpers import tiny_spec

COLD = {
    "data.split.cold_items": 0.2,
    "data.split.cold_seed": 3,
    "loss.weights.content": 0.5,
    "fusion.alpha": 0.3,
}


def test_hard_negatives_are_the_text_nearest_items_the_backbone_does_not_put_near():
    from moo_search.recommender.model.tokens import tokenize_cached

    spec = tiny_spec(**COLD, **{"loss.content_hard_negatives": 3, "loss.content_neighbours": 4})
    data = prepare_data(spec)
    model, tok, _ = build_model(spec, data)
    items = tokenize_cached(tok, data.item_texts, spec.model.max_item_length)
    cpu = torch.device("cpu")
    pool = item_hard_negatives(spec, data, model, items, cpu)
    assert pool is not None and pool.shape == (len(data.split.warm), 16)
    exclude = _backbone_neighbours(spec, data, model, HARD_EXCLUDE * 4)
    assert exclude is not None and exclude.shape[1] == 20
    emb = frozen_item_embeddings(model, items, cpu)
    warm = data.split.warm
    for i in range(len(warm)):
        allowed = warm.copy()
        allowed[i] = False
        allowed[exclude[i]] = False
        assert allowed[pool[i]].all()  # warm, never itself, never a backbone neighbour
        sim = emb[i] @ emb.T
        # the nearest by text among what is allowed, nearest first
        best = np.sort(sim[allowed])[::-1][: pool.shape[1]]
        np.testing.assert_allclose(sim[pool[i]], best, rtol=1e-5, atol=1e-6)


def test_no_hard_negatives_without_the_knob_or_without_the_content_term():
    spec = tiny_spec(**COLD)
    data = prepare_data(spec)
    model, _, _ = build_model(spec, data)
    assert item_hard_negatives(spec, data, model, None, torch.device("cpu")) is None
    off = tiny_spec(**{**COLD, "loss.weights.content": 0.0, "loss.content_hard_negatives": 2})
    assert item_hard_negatives(off, data, model, None, torch.device("cpu")) is None


def test_several_positives_and_hard_negatives_still_lower_the_content_loss():
    """The content phase on planted data with 3 positives and 4 hard negatives an item: the
    term is finite and falls, then the ranking term joins."""
    from moo_search import run_trial

    spec = tiny_spec(
        **{
            **COLD,
            "train.max_steps": 62,
            "train.content_steps": 60,
            "train.lr": 1e-2,
            "loss.content_positives": 3,
            "loss.content_hard_negatives": 4,
        },
    )
    terms = run_trial(spec).history["terms"]
    assert all(set(t) == {"content"} for t in terms[:60])
    assert {"ranking", "content"} <= set(terms[60])
    content = [t["content"] for t in terms[:60]]
    assert np.isfinite(content).all()
    assert np.mean(content[-5:]) < np.mean(content[:5]) - 0.1, content


def test_hard_negatives_make_the_content_term_harder_at_the_start():
    """Text-near, backbone-far negatives are harder than in-batch ones: the first step's
    content loss is higher with them (the same batch and positives: the same seed)."""
    from moo_search import run_trial

    def first(hard: int) -> float:
        spec = tiny_spec(
            **{**COLD, "train.max_steps": 2, "train.content_steps": 2},
            **{"loss.content_hard_negatives": hard, "train.lr": 1e-9},
        )
        return float(run_trial(spec).history["terms"][0]["content"])

    assert first(8) > first(0) + 0.05


def test_more_positives_than_neighbours_names_the_field():
    with pytest.raises(SpecError, match=r"at most loss\.content_neighbours \(4\)") as e:
        tiny_spec(**{"loss.content_positives": 5, "loss.content_neighbours": 4})
    assert e.value.field == "loss.content_positives"
