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


def test_more_positives_than_neighbours_names_the_field():
    with pytest.raises(SpecError, match=r"at most loss\.content_neighbours \(4\)") as e:
        tiny_spec(**{"loss.content_positives": 5, "loss.content_neighbours": 4})
    assert e.value.field == "loss.content_positives"


def _batch(anchors, neighbours, emb, positives=1, hard=None, hard_n=0, seed=0):
    from types import SimpleNamespace

    class Model:
        def encode_rows(self, table, idx, device):
            return emb[torch.as_tensor(idx)]

    pairs = SimpleNamespace(neighbours=neighbours, item_tokens=object(), hard_negatives=hard)
    cfg = SimpleNamespace(
        content_temperature=0.1, content_positives=positives, content_hard_negatives=hard_n
    )
    return SimpleNamespace(
        pairs=pairs,
        s_full=torch.zeros(1),
        fused=torch.zeros(1),
        i=anchors,
        gen=torch.Generator().manual_seed(seed),
        model=Model(),
        loss_cfg=cfg,
    )


def test_one_positive_and_no_hard_negatives_is_the_in_batch_infonce():
    """The default term: each anchor against one drawn neighbour, the batch as negatives, an
    anchor's repeated copies' positives left out; symmetric (the same draws as before)."""
    from moo_search.recommender.train.terms import _content

    g = torch.Generator().manual_seed(1)
    emb = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=1)
    neighbours = torch.randint(0, 30, (30, 4), generator=g)
    anchors = torch.tensor([0, 3, 3, 7, 11, 19, 25, 2])
    got = _content(_batch(anchors, neighbours, emb))

    pick = torch.randint(0, 4, (len(anchors),), generator=torch.Generator().manual_seed(0))
    pos = neighbours[anchors, pick]
    logits = emb[anchors] @ emb[pos].T / 0.1
    same = (anchors[:, None] == anchors[None, :]) & ~torch.eye(len(anchors), dtype=torch.bool)
    logits = logits.masked_fill(same, -1e4)
    t = torch.arange(len(anchors))
    ce = torch.nn.functional.cross_entropy
    want = 0.5 * (ce(logits, t) + ce(logits.T, t))
    torch.testing.assert_close(got, want)


def test_hard_negatives_that_are_an_anchors_neighbours_are_not_its_negatives():
    """A hard column holding one of the anchor's own neighbours does not count against it. Item
    1 is item 0's neighbour and embeds as item 0 does; were it a negative of anchor 0, that
    row's loss would rise by log 2. For anchor 2 it is a far negative and adds ~e^-10."""
    from moo_search.recommender.train.terms import _content

    emb = torch.eye(6)
    emb[1] = emb[0]
    emb[3] = emb[2]
    neighbours = torch.tensor([[1], [0], [3], [2], [5], [4]])
    anchors = torch.tensor([0, 2])
    hard = torch.ones(6, 1, dtype=torch.long)  # every item's hard negative: item 1
    with_hard = _content(_batch(anchors, neighbours, emb, hard=hard, hard_n=1))
    without = _content(_batch(anchors, neighbours, emb))
    assert abs(float(with_hard - without)) < 1e-3, (float(with_hard), float(without))
    # the same hard item is counted where it is not a neighbour: item 5's text as anchor 0's
    near = emb.clone()
    near[5] = emb[0]
    hard5 = torch.full((6, 1), 5, dtype=torch.long)
    counted = _content(_batch(anchors, neighbours, near, hard=hard5, hard_n=1))
    assert float(counted - without) > 0.1
