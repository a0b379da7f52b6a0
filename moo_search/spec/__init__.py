"""The typed, validated study spec (YAML) and dotted-path overrides: the engine's part.

A study spec holds the study-level sections (``search_space``, ``objectives``,
``constraints``, ``driver``, ``budget``, ``storage``, ``plugins``; :mod:`._study`,
:mod:`._driver`). The objective a study runs may add sections of its own: its spec class
extends :class:`StudySpec` (the default objective's is
:class:`moo_search.recommender.spec.RecommenderSpec`, which adds the trial config) and
:func:`spec_from_dict` picks it by the spec's ``objective``.

Every validation error names the field by its dotted path, states the rule and the value
found, and suggests the closest valid key for a typo (:mod:`._errors`). Names of registered
things are checked against their registries (:mod:`moo_search.registry`).
"""

from __future__ import annotations

from moo_search.spec._driver import BudgetConfig, DriverConfig, EarlyStoppingConfig
from moo_search.spec._load import load_spec, spec_class, spec_from_dict
from moo_search.spec._paths import apply_overrides, parse_override
from moo_search.spec._study import (
    DEFAULT_OBJECTIVE,
    Constraint,
    Dimension,
    Objective,
    StudySpec,
    suggestion_order,
)

__all__ = [
    "DEFAULT_OBJECTIVE",
    "BudgetConfig",
    "Constraint",
    "Dimension",
    "DriverConfig",
    "EarlyStoppingConfig",
    "Objective",
    "StudySpec",
    "apply_overrides",
    "load_spec",
    "parse_override",
    "spec_class",
    "spec_from_dict",
    "suggestion_order",
]
