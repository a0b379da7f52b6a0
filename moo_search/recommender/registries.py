"""The recommender's registries: where a dataset, adapter type, collaborative backbone or metric
becomes known to the default objective (the mechanism is the engine's
:class:`moo_search.registry.Registry`). Built-in entries are imported on first lookup; a
study's own come from its ``plugins`` modules.
"""

from __future__ import annotations

from typing import Any

from moo_search.registry import Registry

__all__ = ["ADAPTERS", "BACKBONES", "DATASETS", "METRICS"]

DATASETS: Registry[Any] = Registry(
    "dataset",
    field="data.dataset",
    builtins=("moo_search.recommender.data.registered",),
    entry="moo_search.recommender.data.registered:DatasetSource",
)
"""name -> :class:`moo_search.recommender.data.registered.DatasetSource` (``load(cfg) -> Dataset``,
optional ``fetch``/``is_cached``)."""

ADAPTERS: Registry[Any] = Registry(
    "adapter type", field="adapter.type", builtins=("moo_search.recommender.model.adapters",)
)
"""name -> ``build(model, cfg: AdapterConfig) -> peft config`` (None: no adapter)."""

BACKBONES: Registry[Any] = Registry(
    "collaborative backbone",
    field="fusion.cf",
    builtins=("moo_search.recommender.model.backbones",),
    entry="moo_search.recommender.model.backbones:Backbone",
)
"""name -> :class:`moo_search.recommender.model.backbones.Backbone`."""

METRICS: Registry[Any] = Registry(
    "metric",
    field="objectives",
    builtins=("moo_search.recommender.metrics",),
    entry="moo_search.recommender.metrics._registry:MetricDef",
)
"""family name -> :class:`moo_search.recommender.metrics.MetricDef` (direction, compute, slices)."""
