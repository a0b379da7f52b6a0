"""The typed, validated study spec (YAML) and dotted-path overrides.

A study spec is a trial config (``data``, ``model``, ``adapter``, ``fusion``, ``loss``,
``train``, ``rerank``, ``eval``, ``seed``; :mod:`._trial`) plus the study-level sections
(``search_space``, ``objectives``, ``constraints``, ``driver``, ``budget``, ``storage``;
:mod:`._study`). Search dimensions are dotted paths into the trial config (:mod:`._paths`), so
any value can be searched without code changes.

Every validation error names the field by its dotted path, states the rule and the value
found, and suggests the closest valid key for a typo (:mod:`._errors`). Names of registered
things (datasets, adapters, backbones, drivers, problems, metrics) are checked against
:mod:`moo_search.registry`.
"""

from __future__ import annotations

from moo_search.spec._driver import BudgetConfig, DriverConfig, EarlyStoppingConfig
from moo_search.spec._load import load_spec, spec_from_dict
from moo_search.spec._paths import apply_overrides, parse_override
from moo_search.spec._study import (
    DEFAULT_OBJECTIVE,
    Constraint,
    Dimension,
    Objective,
    StudySpec,
    suggestion_order,
)
from moo_search.spec._trial import (
    TRIAL_SECTIONS,
    AdapterConfig,
    DataConfig,
    EvalConfig,
    FusionConfig,
    LossConfig,
    LossWeights,
    ModelConfig,
    RerankConfig,
    SplitConfig,
    SyntheticConfig,
    TinyModelConfig,
    TrainConfig,
)

__all__ = [
    "DEFAULT_OBJECTIVE",
    "TRIAL_SECTIONS",
    "AdapterConfig",
    "BudgetConfig",
    "Constraint",
    "DataConfig",
    "Dimension",
    "DriverConfig",
    "EarlyStoppingConfig",
    "EvalConfig",
    "FusionConfig",
    "LossConfig",
    "LossWeights",
    "ModelConfig",
    "Objective",
    "RerankConfig",
    "SplitConfig",
    "StudySpec",
    "SyntheticConfig",
    "TinyModelConfig",
    "TrainConfig",
    "apply_overrides",
    "is_known_metric",
    "load_spec",
    "parse_override",
    "spec_from_dict",
    "suggestion_order",
]


def is_known_metric(name: str) -> bool:
    """Whether the default trial reports ``name`` (see :func:`moo_search.metrics.is_known_metric`)."""
    from moo_search.metrics import is_known_metric as known

    return known(name)
