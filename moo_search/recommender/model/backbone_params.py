"""The built-in closed-form backbones' knobs, each its own params model (set and searched at
``fusion.cf_params.<knob>``; the ``mf`` backbone's is
:class:`~moo_search.recommender.model.cf_towers.MFParams`)."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from moo_search.recommender.registries import BACKBONES
from moo_search.spec._errors import Strict

__all__ = ["EaseParams", "ItemKNNParams", "SansaParams", "backbone_params", "own_params"]


class EaseParams(Strict):
    """EASE's knobs (``fusion.cf_params``)."""

    model_config = ConfigDict(populate_by_name=True)
    lambda_: float | None = Field(
        None,
        alias="lambda",
        gt=0,
        description="EASE's L2 weight (None: tuned on validation over EASE_LAMBDAS).",
    )


class ItemKNNParams(Strict):
    """ItemKNN's knobs (``fusion.cf_params``)."""

    neighbours: int = Field(100, ge=1, description="Neighbours kept per item.")


class SansaParams(Strict):
    """SANSA's knobs (``fusion.cf_params``)."""

    l2: float | None = Field(
        None, gt=0, description="SANSA's L2 weight (None: tuned on validation over SANSA_L2S)."
    )
    density: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Weight density per factor (None: 100 weights per item).",
    )


def backbone_params(fusion: Any) -> Any:
    """The ``fusion.cf`` backbone's own knobs: ``fusion.cf_params`` validated by its ``params``
    model (None for a backbone without one)."""
    return own_params(fusion.cf, fusion.cf_params)


def own_params(name: str, params: dict[str, Any] | None = None) -> Any:
    """Backbone ``name``'s knobs: ``params`` (its defaults: None or {}) validated by its
    ``params`` model (None for a backbone without one)."""
    model = BACKBONES.get(name).params
    return None if model is None else model.model_validate(params or {})
