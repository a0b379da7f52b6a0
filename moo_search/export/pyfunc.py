"""The MLflow ``loader_module`` of the models logged before the recommender moved into
``moo_search/recommender/``: their ``MLmodel`` names ``moo_search.export.pyfunc``. They are
bundles of the default objective, so it loads them (:meth:`moo_search.objective.Objective.
load_pyfunc`), as it loads the bundles it writes today; the engine names no recommender module."""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def _load_pyfunc(path: str) -> Any:
    """MLflow's entry point for an old bundle at ``path``."""
    from moo_search.registry import OBJECTIVES
    from moo_search.spec import DEFAULT_OBJECTIVE

    return OBJECTIVES.get(DEFAULT_OBJECTIVE).load_pyfunc(path)
