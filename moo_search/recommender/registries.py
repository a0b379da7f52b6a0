"""The recommender's registries: where a dataset, adapter type, collaborative backbone, metric,
loss term or baseline becomes known to the default objective (the mechanism is the engine's
:class:`moo_search.registry.Registry`). Built-in entries are imported on first lookup; a
study's own come from its ``plugins`` modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moo_search.registry import Registry

if TYPE_CHECKING:  # the entry types (this module imports nothing heavy at run time)
    from moo_search.recommender.baselines.entry import Baseline
    from moo_search.recommender.config import AdapterType
    from moo_search.recommender.data.registered import DatasetSource
    from moo_search.recommender.metrics import MetricDef
    from moo_search.recommender.model.backbones import Backbone
    from moo_search.recommender.model.family import ModelFamily
    from moo_search.recommender.train.terms import LossTerm

__all__ = [
    "ADAPTERS",
    "BACKBONES",
    "BASELINES",
    "DATASETS",
    "FAMILIES",
    "LOSS_TERMS",
    "METRICS",
]

DATASETS: Registry[DatasetSource] = Registry(
    "dataset",
    field="data.dataset",
    builtins=("moo_search.recommender.data.registered",),
    entry="moo_search.recommender.data.registered:DatasetSource",
)
"""name -> :class:`moo_search.recommender.data.registered.DatasetSource` (``load(cfg) -> Dataset``,
optional ``fetch``/``is_cached``)."""

FAMILIES: Registry[ModelFamily] = Registry(
    "model family",
    field="model.tiny.family",
    builtins=("moo_search.recommender.model.families",),
    entry="moo_search.recommender.model.family:ModelFamily",
)
"""name -> :class:`moo_search.recommender.model.family.ModelFamily`: how the models of one
architecture (``config.json``'s ``model_type``) load, pool, are adapted and cached."""

ADAPTERS: Registry[AdapterType] = Registry(
    "adapter type",
    field="adapter.type",
    builtins=("moo_search.recommender.model.adapters",),
    entry="moo_search.recommender.config:AdapterType",
    adapt="moo_search.recommender.config:AdapterType.of",
)
"""name -> :class:`moo_search.recommender.config.AdapterType` (its PEFT builder, the knobs it
owns, its own params model); a bare ``build(model, cfg) -> peft config`` function still
registers (``AdapterType.of``), read as owning every knob."""

BACKBONES: Registry[Backbone] = Registry(
    "collaborative backbone",
    field="fusion.cf",
    builtins=("moo_search.recommender.model.backbones",),
    entry="moo_search.recommender.model.backbones:Backbone",
)
"""name -> :class:`moo_search.recommender.model.backbones.Backbone`."""

METRICS: Registry[MetricDef] = Registry(
    "metric",
    field="objectives",
    builtins=("moo_search.recommender.metrics",),
    entry="moo_search.recommender.metrics._registry:MetricDef",
)
"""family name -> :class:`moo_search.recommender.metrics.MetricDef` (direction, compute, slices)."""

LOSS_TERMS: Registry[LossTerm] = Registry(
    "loss term",
    field="loss.weights",
    builtins=("moo_search.recommender.train.terms",),
    entry="moo_search.recommender.train.terms:LossTerm",
    adapt="moo_search.recommender.train.terms:LossTerm.of",
)
"""weight name (a key of ``loss.weights``) -> :class:`moo_search.recommender.train.terms.
LossTerm` (``fn(batch) -> scalar loss``, its default weight, its description). A plugin's term
is weighted by ``loss.weights.<name>`` like a built-in one; a bare ``fn`` still registers,
with weight 0 unless the spec sets one."""

BASELINES: Registry[Baseline] = Registry(
    "baseline",
    field="baselines",
    builtins=("moo_search.recommender.baselines.ranking",),
    entry="moo_search.recommender.baselines.entry:Baseline",
    adapt="moo_search.recommender.baselines.entry:Baseline.of",
)
"""display name -> :class:`moo_search.recommender.baselines.entry.Baseline`
(``fit(ctx: BaselineContext) -> Scorer``, users -> scores over the catalog, and the flags that
say which studies record it): a ranking baseline a study records, puts on its reference front
(through the same re-rankers) and shows on its dashboard. A bare ``fit`` still registers."""
