"""What a trial is built from: the prepared data of a split (texts, features, popularity,
like-rates; cached per process), the study's collaborative backbone, and the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from moo_search.errors import SpecError
from moo_search.recommender.data import (
    Dataset,
    Split,
    ensure_dataset,
    load_split,
    render_items,
    render_users,
)
from moo_search.recommender.spec import RecommenderSpec

logger = logging.getLogger("moo_search")

__all__ = [
    "Collaborative",
    "PreparedData",
    "build_model",
    "collaborative_backbone",
    "history_rows",
    "item_hard_negatives",
    "item_neighbours",
    "prepare_data",
]


@dataclass
class PreparedData:
    ds: Dataset
    split: Split
    item_texts: list[str]
    user_texts: list[str]
    features: np.ndarray
    item_counts: np.ndarray
    item_pop: np.ndarray  # share of train users per item; unseen items 1 / (n_users + 1)
    like_rates: Any  # moo_search.recommender.model.ctr.LikeRates of the train exposures


@lru_cache(maxsize=4)
def _prepare(data_json: str) -> PreparedData:
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.model.ctr import split_like_rates

    cfg = DataConfig.model_validate_json(data_json)
    ds, split = load_split(cfg)
    user_counts, item_counts = split.train_counts()
    n_train_users = max(int((user_counts > 0).sum()), 1)
    return PreparedData(
        ds=ds,
        split=split,
        item_texts=render_items(ds, cfg.item_text),
        user_texts=render_users(ds, split.train, cfg.history_len),
        features=ds.item_features(),
        item_counts=item_counts,
        item_pop=np.where(item_counts > 0, item_counts / n_train_users, 1.0 / (n_train_users + 1)),
        like_rates=split_like_rates(split),
    )


def prepare_data(spec: RecommenderSpec) -> PreparedData:
    """Dataset, split and texts for ``spec.data`` (cached per process)."""
    ensure_dataset(spec.data)
    return _prepare(spec.data.model_dump_json())


@dataclass
class Collaborative:
    """A study's collaborative backbone on its split: W (None for mf; a numpy array or
    :class:`~moo_search.recommender.model.sparse_weights.SparseWeights`), the users' scores x_u W (None when
    the users x items table is over the memory budget: computed per batch from ``train``),
    the train matrix and the parameters."""

    name: str
    weights: Any
    scores: np.ndarray | None
    params: dict[str, Any]
    train: Any = None


def collaborative_backbone(spec: RecommenderSpec, data: PreparedData) -> Collaborative:
    """The ``fusion.cf`` backbone, from the on-disk cache after its first computation."""
    from moo_search.recommender.memory import scores_fit
    from moo_search.recommender.model.backbones import backbone_weights
    from moo_search.recommender.model.sparse_weights import user_scores

    w, params = backbone_weights(
        spec.fusion.cf,
        split=data.split,
        features=data.features,
        eval_cfg=spec.eval,
        params=spec.fusion.cf_params,
    )
    scores = x = None
    if w is not None:
        x = data.split.matrix("train").astype(np.float32).tocsr()
        n_users, n_items = x.shape
        if scores_fit(n_users, n_items):
            scores = user_scores(x, w)
    return Collaborative(spec.fusion.cf, w, scores, params, x)


_WEIGHTS_SHA256: dict[str, str] = {}


def _weights_sha256(spec: RecommenderSpec, encoder: Any) -> str:
    """The base encoder's weights fingerprint, hashed once per process and model config
    (~90 MB for MiniLM: a third of a second a trial otherwise)."""
    from moo_search.recommender.model.encoder import base_model_fingerprint

    key = spec.model.model_dump_json()
    if key not in _WEIGHTS_SHA256:
        _WEIGHTS_SHA256[key] = base_model_fingerprint(encoder)
    return _WEIGHTS_SHA256[key]


def item_alpha(spec: RecommenderSpec, data: PreparedData, *, serving: bool = False) -> np.ndarray:
    """Each item's fusion weight: ``fusion.alpha``, times ``fusion.tail_weight`` (capped at 1)
    for items outside the popular head (the head of the ``tail/`` metric slice); with
    ``serving``, the weights the model scores with (``fusion.serve_alpha`` /
    ``fusion.serve_tail_weight`` where set) rather than those it is trained with."""
    from moo_search.recommender.metrics import head_items

    _, item_users = data.split.train_counts()
    alpha, boost = (
        spec.fusion.serving() if serving else (spec.fusion.alpha, spec.fusion.tail_weight)
    )
    tail = ~head_items(item_users)
    return np.where(tail, min(1.0, alpha * boost), alpha).astype(np.float32)


def build_model(spec: RecommenderSpec, data: PreparedData) -> tuple[Any, Any, str]:
    """(Recommender, tokenizer, base model id); config errors surface here, before training."""
    from moo_search.recommender.model.adapters import apply_adapter
    from moo_search.recommender.model.assemble import TowerParts, assemble
    from moo_search.recommender.model.backbone_cache import backbone_sha256
    from moo_search.recommender.model.encoder import load_encoder, unwrapped
    from moo_search.recommender.model.tasks import split_rating_offsets

    use_text = spec.fusion.alpha > 0
    if not use_text and spec.fusion.serve_alpha:
        raise SpecError(
            f"is {spec.fusion.serve_alpha:g}, but fusion.alpha is 0: no text tower is trained "
            "to serve; set fusion.alpha > 0 or leave serve_alpha unset",
            field="fusion.serve_alpha",
        )
    encoder, tokenizer, base_id = load_encoder(spec.model)
    weights = _weights_sha256(spec, encoder) if spec.train.layer_cache and use_text else ""
    encoder = apply_adapter(encoder, spec.adapter)
    if spec.train.gradient_checkpointing and use_text:
        base = unwrapped(encoder)
        # (non-reentrant: the frozen inputs need no requires_grad for the adapters to learn)
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    cf = collaborative_backbone(spec, data)
    rates = data.like_rates
    parts = TowerParts(
        n_users=data.ds.n_users,
        n_items=data.ds.n_items,
        item_logpop=np.log(data.item_pop),
        cf_weights=cf.weights,
        cf_scores=cf.scores,
        cf_train=cf.train,
        like_logits=(rates.user_logit, rates.item_logit, rates.global_logit),
        item_alpha=item_alpha(spec, data),
        rating_offsets=split_rating_offsets(data.split),
        warm=data.split.warm if data.split.has_cold_items else None,
    )
    model = assemble(spec, encoder, parts, layer_cache=(weights, spec.train.layer_cache))
    model.backbone_info = {
        "name": cf.name,
        "params": cf.params,
        "sha256": backbone_sha256(cf.weights) if cf.weights is not None else None,
    }
    return model, tokenizer, base_id


def history_rows(spec: RecommenderSpec, data: PreparedData) -> Any:
    """(U, I) sparse rows averaging each user's train items: what scores new items by text
    (``fusion.new_items``: history, blend, auto); None when the split holds out no item or
    the spec scores new items otherwise."""
    import scipy.sparse as sp

    if not data.split.has_cold_items or spec.fusion.new_items in ("user", "map"):
        return None
    x = data.split.matrix("train").astype(np.float64)
    counts = np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)
    return sp.csr_matrix(sp.diags(1.0 / counts) @ x)


def item_neighbours(spec: RecommenderSpec, data: PreparedData, model: Any) -> np.ndarray | None:
    """(I, n) each item's ``loss.content_neighbours`` nearest warm items by the backbone's
    item-item weights (symmetrised; co-occurrence cosine for a learned backbone): what the
    content loss term aligns item texts with. None when that term is off (no weight and no
    content phase)."""
    return _backbone_neighbours(spec, data, model, spec.loss.content_neighbours)


def _content_on(spec: RecommenderSpec) -> bool:
    content = spec.loss.weights.of("content") > 0 or spec.train.content_steps > 0
    return content and spec.fusion.alpha > 0


def _backbone_neighbours(
    spec: RecommenderSpec, data: PreparedData, model: Any, depth: int
) -> np.ndarray | None:
    """(I, depth) each item's nearest warm items by the backbone (unordered), or None."""
    if not _content_on(spec):
        return None
    from moo_search.recommender.model.backbones import itemknn_weights
    from moo_search.recommender.model.sparse_weights import SPARSE_FROM_ITEMS, itemknn_sparse

    warm = data.split.warm
    n = min(depth, int(warm.sum()) - 1)
    w = model.cf_matrix()
    if w is None:
        x = data.split.matrix("train").astype(np.float64).tocsr()
        w = itemknn_weights(x, 100) if len(warm) < SPARSE_FROM_ITEMS else itemknn_sparse(x, 100)
    if isinstance(w, np.ndarray):
        w = w.astype(np.float64)
        sim = np.abs(w) + np.abs(w.T)
        np.fill_diagonal(sim, -np.inf)
        sim[:, ~warm] = -np.inf  # a held-out item is nobody's neighbour
        return np.argpartition(-sim, n - 1, axis=1)[:, :n].astype(np.int64)
    out = np.empty((len(warm), n), dtype=np.int64)  # sparse W: a chunk of items at a time
    for start in range(0, len(warm), 1024):
        idx = np.arange(start, min(start + 1024, len(warm)))
        sim = np.abs(w.rows(idx)) + np.abs(w.columns(idx))
        sim[np.arange(len(idx)), idx] = -np.inf
        sim[:, ~warm] = -np.inf
        out[idx] = np.argpartition(-sim, n - 1, axis=1)[:, :n]
    return out


HARD_EXCLUDE = 5
"""Hard negatives come from outside each item's HARD_EXCLUDE x content_neighbours nearest by
the backbone: items users do take with it are never pushed away."""


def item_hard_negatives(
    spec: RecommenderSpec, data: PreparedData, model: Any, item_tokens: Any, device: Any
) -> np.ndarray | None:
    """(I, pool) for each item the warm items the frozen text tower places nearest it that the
    backbone does not (outside its HARD_EXCLUDE x ``loss.content_neighbours`` nearest), nearest
    first; the content term draws ``loss.content_hard_negatives`` of them per step. None when
    that knob is 0 or the content term is off."""
    h = spec.loss.content_hard_negatives
    if h <= 0 or not _content_on(spec):
        return None
    warm = data.split.warm
    exclude = _backbone_neighbours(spec, data, model, HARD_EXCLUDE * spec.loss.content_neighbours)
    assert exclude is not None
    pool = min(max(4 * h, 16), int(warm.sum()) - exclude.shape[1] - 1)
    if pool < 1:
        return None
    emb = frozen_item_embeddings(model, item_tokens, device)
    out = np.empty((len(warm), pool), dtype=np.int64)
    for start in range(0, len(warm), 1024):
        idx = np.arange(start, min(start + 1024, len(warm)))
        sim = emb[idx] @ emb.T
        sim[:, ~warm] = -np.inf
        sim[np.arange(len(idx)), idx] = -np.inf
        np.put_along_axis(sim, exclude[idx], -np.inf, axis=1)
        top = np.argpartition(-sim, pool - 1, axis=1)[:, :pool]
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1, kind="stable")
        out[idx] = np.take_along_axis(top, order, axis=1)
    return out


def frozen_item_embeddings(model: Any, item_tokens: Any, device: Any) -> np.ndarray:
    """(I, d) unit-norm float32 item embeddings of the text tower as it is now (before
    training: the pretrained model, the adapters at their identity start)."""
    import torch

    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n = len(item_tokens.lengths)
            for start in range(0, n, 256):
                idx = np.arange(start, min(start + 256, n))
                rows.append(model.encode_rows(item_tokens, idx, device).float().cpu())
    finally:
        model.train(was_training)
    emb = torch.nn.functional.normalize(torch.cat(rows), dim=1)
    return emb.numpy()


def missing_needs(data: PreparedData) -> dict[str, str]:
    """What the data lacks of :data:`~moo_search.recommender.metrics.NEEDS` (held-out items
    are the spec's and checked there): {need: what was found}."""
    out = {}
    ratings = np.unique(data.ds.interactions["rating"].to_numpy())
    if len(ratings) < 2:
        out["ratings"] = f"every interaction has rating {ratings[0]:g} (click-only data)"
    if data.features.shape[1] == 0 or not data.features.any():
        out["item_features"] = "no item has a genre"
    return out


def check_metric_needs(spec: Any, data: PreparedData) -> None:
    """Before any trial: an objective or constraint whose metric the data cannot define is a
    SpecError naming it; a recorded metric the data cannot define is one warning."""
    from moo_search.recommender.metrics import NEEDS, metric_needs

    lacking = missing_needs(data)
    if not lacking:
        return
    used = [("objectives", i, o.metric) for i, o in enumerate(spec.objectives)]
    used += [("constraints", i, c.metric) for i, c in enumerate(spec.constraints)]
    for section, i, metric in used:
        gap = [n for n in metric_needs(metric) if n in lacking]
        if gap:
            raise SpecError(
                f"{metric} needs {NEEDS[gap[0]]}, and the data "
                f"({spec.data.dataset}) has none: {lacking[gap[0]]}; choose another metric",
                field=f"{section}.{i}",
            )
    recorded = {
        "ratings": "satisfaction_rmse, conversion_auc and conversion_logloss",
        "item_features": "ild@K",
    }
    for need, found in lacking.items():
        logger.warning(
            "the data (%s) has no %s (%s): %s recorded for each trial mean nothing here",
            spec.data.dataset,
            NEEDS[need],
            found,
            recorded[need],
        )
