"""The recommender's registries: where a dataset, adapter type, collaborative backbone, metric,
loss term or baseline becomes known to the default objective (the mechanism is the engine's
:class:`moo_search.registry.Registry`). Built-in entries are imported on first lookup; a
study's own come from its ``plugins`` modules.
"""

from __future__ import annotations

from typing import Any

from moo_search.registry import Registry

__all__ = [
    "ADAPTERS",
    "BACKBONES",
    "BASELINES",
    "DATASETS",
    "FAMILIES",
    "LOSS_TERMS",
    "METRICS",
]

DATASETS: Registry[Any] = Registry(
    "dataset",
    field="data.dataset",
    builtins=("moo_search.recommender.data.registered",),
    entry="moo_search.recommender.data.registered:DatasetSource",
)
"""name -> :class:`moo_search.recommender.data.registered.DatasetSource` (``load(cfg) -> Dataset``,
optional ``fetch``/``is_cached``)."""

FAMILIES: Registry[Any] = Registry(
    "model family",
    field="model.tiny.family",
    builtins=("moo_search.recommender.model.families",),
    entry="moo_search.recommender.model.family:ModelFamily",
)
"""name -> :class:`moo_search.recommender.model.family.ModelFamily`: how the models of one
architecture (``config.json``'s ``model_type``) load, pool, are adapted and cached."""

ADAPTERS: Registry[Any] = Registry(
    "adapter type", field="adapter.type", builtins=("moo_search.recommender.model.adapters",)
)
"""name -> :class:`moo_search.recommender.config.AdapterType` (its PEFT builder, the knobs it
owns, its own params model); a bare ``build(model, cfg) -> peft config`` function still
registers, read as owning every knob."""

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

LOSS_TERMS: Registry[Any] = Registry(
    "loss term", field="loss.weights", builtins=("moo_search.recommender.train.terms",)
)
"""weight name (a key of ``loss.weights``) -> ``term(batch) -> scalar loss``
(:class:`moo_search.recommender.train.terms.Batch`). A term registered by a plugin is weighted
by ``loss.weights.<name>`` (0 when unset) like a built-in one."""

BASELINES: Registry[Any] = Registry(
    "baseline", field="baselines", builtins=("moo_search.recommender.baselines.ranking",)
)
"""display name -> ``fit(ctx: BaselineContext) -> Scorer`` (users -> scores over the catalog):
a ranking baseline every study records, puts on its reference front (through the same
re-rankers) and shows on its dashboard."""
