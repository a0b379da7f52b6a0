"""Multi-objective early stopping: the rung decision, read from the storage.

At each rung a trial records its validation objective vector (``ATTR.RUNGS``); it then stops
when, among every trial of the study that reached the same rung (on any worker), its
non-domination rank puts it outside the best ``1/eta`` (:func:`pareto.successive_halving_keeps`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from moo_search.pareto import successive_halving_keeps
from moo_search.study import ATTR, is_derived

__all__ = ["rung_vectors", "stays"]


def rung_vectors(study: Any, step: int, *, exclude: int | None = None) -> list[list[float]]:
    """The objective vectors every trial recorded at rung ``step`` (variants excluded)."""
    key = str(step)
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.number == exclude or is_derived(t):
            continue
        vec = (t.user_attrs.get(ATTR.RUNGS) or {}).get(key)
        if vec is not None:
            out.append([math.nan if v is None else float(v) for v in vec])
    return out


def stays(
    study: Any,
    number: int,
    step: int,
    values: list[float],
    directions: list[str],
    *,
    eta: float,
    min_trials: int,
) -> tuple[bool, int]:
    """(whether trial ``number`` goes on past rung ``step``, trials compared at the rung)."""
    others = rung_vectors(study, step, exclude=number)
    mine = [v if math.isfinite(v) else math.nan for v in values]
    F = np.array([*others, mine], dtype=np.float64).reshape(len(others) + 1, len(values))
    keep = successive_halving_keeps(F, len(others), directions, eta=eta, min_points=min_trials)
    return keep, len(F)
