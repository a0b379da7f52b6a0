"""The recommender built from its parts, in one place: what a trial trains and an export
loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_search.recommender.model.encoder import family_of, pooling_of
from moo_search.recommender.model.layer_cache import FrozenPrefix, frozen_prefix_length
from moo_search.recommender.model.recommender import Recommender
from moo_search.recommender.spec import RecommenderSpec

__all__ = ["TowerParts", "assemble"]


@dataclass
class TowerParts:
    """What the towers are built from besides the encoder and the spec: the catalog's sizes and
    popularity, the closed-form backbone (``cf_weights``: W, dense or sparse; None for a
    backbone learned with the adapter), the users' backbone scores (``cf_scores``) or the train
    rows that compute them per batch (``cf_train``), the like-rate logits (user, item, global),
    each item's fusion weight, the satisfaction task's rating offsets and the warm items."""

    n_users: int
    n_items: int
    item_logpop: np.ndarray
    cf_weights: Any = None
    cf_scores: np.ndarray | None = None
    cf_train: Any = None
    like_logits: tuple[np.ndarray | None, np.ndarray | None, float] = (None, None, 0.0)
    item_alpha: np.ndarray | None = None
    rating_offsets: Any = None
    warm: np.ndarray | None = None
    cf_tower: Any = None  # the collaborative tower (set by assemble)


def assemble(
    spec: RecommenderSpec,
    encoder: Any,
    parts: TowerParts,
    *,
    layer_cache: tuple[str, bool] = ("", False),
) -> Recommender:
    """The recommender from its parts, as a trial trains it and an export loads it: the towers,
    the held-out items, and the frozen lower layers run once per text (``layer_cache``: the
    base weights' SHA-256 and whether to cache their outputs on disk)."""
    parts.cf_tower = collaborative_tower(spec, parts)
    model = Recommender(
        encoder,
        parts,
        alpha=spec.fusion.alpha,
        temperature=spec.loss.temperature,
        pooling=pooling_of(spec.model),
    )
    model.left_padded = family_of(spec.model).padding_side == "left"
    model.linear_tasks = not spec.loss.task_towers  # an old config: linear task heads (compat)
    model.hold_out(parts.warm)
    n_frozen = 0 if model.left_padded else frozen_prefix_length(encoder)
    if n_frozen and spec.fusion.alpha > 0:
        sha, cache = layer_cache
        model.use_prefix(FrozenPrefix(encoder, n_frozen, weights_sha256=sha, cache=cache))
    return model


def collaborative_tower(spec: RecommenderSpec, parts: TowerParts) -> Any:
    """The ``fusion.cf`` backbone's tower: a fitted backbone's W as a
    :class:`~moo_search.recommender.model.cf_towers.ClosedFormTower`, or a learned backbone's
    module (``Backbone.tower``: mf's ID embeddings, a plugin's) built with its knobs."""
    from moo_search.recommender.model.backbone_params import backbone_params
    from moo_search.recommender.model.cf_towers import ClosedFormTower, IDEmbeddings, MFParams
    from moo_search.recommender.registries import BACKBONES

    if spec.fusion.legacy_id_dim:  # an old config: the draws its trials made (compat)
        IDEmbeddings(parts.n_users, parts.n_items, MFParams(dim=spec.fusion.legacy_id_dim))
    if parts.cf_weights is not None:
        return ClosedFormTower(parts.cf_weights, parts.cf_scores, parts.cf_train)
    backbone = BACKBONES.get(spec.fusion.cf)
    if backbone.tower is None:
        raise ValueError(f"backbone {spec.fusion.cf!r} has neither a fitted W nor a tower to learn")
    return backbone.tower(parts.n_users, parts.n_items, backbone_params(spec.fusion))
