"""Choosing the trial to export: a pure function over the study's front rows, and the
study-reading wrapper that resolves ``--trial`` / ``--select`` / ``--where``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moo_search.errors import ExportError
from moo_search.spec import DEFAULT_OBJECTIVE, Constraint

__all__ = ["Selection", "parse_where", "select_row", "select_trial"]


@dataclass
class Selection:
    trial: Any  # FrozenTrial
    rule: str
    where: list[str]
    front: list[dict[str, Any]]


def parse_where(texts: list[str]) -> list[Constraint]:
    out = []
    for t in texts:
        try:
            out.append(Constraint.parse(t))
        except ValueError as e:
            raise ExportError(f"--where {t!r}: {e}") from None
    return out


def select_row(
    front: pd.DataFrame,
    metrics: list[str],
    directions: list[str],
    *,
    select: str,
    where: list[str],
    direction_of: Callable[[str], str] = lambda metric: "maximize",
) -> int:
    """The trial number ``select`` picks among the ``front`` rows (columns ``number``,
    ``obj:<metric>``, ``val:<metric>``) that satisfy every ``where`` filter.

    ``select`` is ``knee``, ``compromise`` or ``best:METRIC`` (an objective or any validation
    metric, in its direction: ``direction_of(metric)``, the objective's).

    Raises:
        ExportError: an unknown rule or metric, or no row left (the message gives the front's
            ranges).
    """
    from moo_search import pareto

    cands = front.copy()
    for c in parse_where(where):
        col = f"obj:{c.metric}" if f"obj:{c.metric}" in cands else f"val:{c.metric}"
        if col not in cands:
            raise ExportError(f"--where {c}: unknown metric {c.metric!r}; objectives are {metrics}")
        vals = cands[col].astype(float)
        cands = cands[vals >= c.value] if c.op == ">=" else cands[vals <= c.value]
    if cands.empty:
        ranges = (
            ", ".join(
                f"{m} in [{front[f'obj:{m}'].min():.4g}, {front[f'obj:{m}'].max():.4g}]"
                for m in metrics
            )
            if not front.empty
            else "the front is empty (no complete feasible trial)"
        )
        raise ExportError(
            f"no front trial satisfies {' and '.join(where) or 'the selection'}; front ranges: {ranges}"
        )
    F = cands[[f"obj:{m}" for m in metrics]].to_numpy(dtype=np.float64)
    if select == "knee":
        idx = pareto.knee_index(F, directions)
    elif select == "compromise":
        idx = pareto.compromise_index(F, directions)
    elif select.startswith("best:"):
        metric = select.split(":", 1)[1]
        if metric in metrics:
            col, direction = f"obj:{metric}", directions[metrics.index(metric)]
        elif f"val:{metric}" in cands:
            col, direction = f"val:{metric}", direction_of(metric)
        else:
            raise ExportError(
                f"--select {select}: unknown metric {metric!r}; objectives are {metrics}"
            )
        vals = cands[col].astype(float).to_numpy()
        idx = int(np.nanargmax(vals) if direction == "maximize" else np.nanargmin(vals))
    else:
        raise ExportError(f"--select {select!r}: expected knee, compromise or best:METRIC")
    return int(cands.iloc[idx]["number"])


def select_trial(
    study: Any, *, trial: int | None, select: str | None, where: list[str]
) -> Selection:
    """Resolve ``--trial N`` or ``--select RULE [--where ...]`` on the study's feasible front."""
    from optuna.trial import TrialState

    from moo_search.report import collect

    data = collect(study, verify_artifacts=False)  # the chosen trial is checked on export
    metrics = data.metrics
    front = data.front
    front_list = [
        {"trial": int(r["number"]), **{m: r[f"obj:{m}"] for m in metrics}}
        for _, r in front.iterrows()
    ]
    trials = study.get_trials(deepcopy=False)
    if trial is not None:
        t = next((x for x in trials if x.number == trial), None)
        if t is None:
            raise ExportError(
                f"--trial {trial}: no such trial; the study has trials 0..{len(trials) - 1}"
            )
        if t.state != TrialState.COMPLETE:
            raise ExportError(
                f"--trial {trial}: the trial is {t.state.name}, only COMPLETE trials can be exported"
            )
        return Selection(t, f"trial {trial}", where, front_list)
    if not select:
        raise ExportError("choose a trial: --trial N or --select knee|compromise|best:METRIC")
    from moo_search.objective import objective_for
    from moo_search.study import STUDY_ATTR

    spec = study.user_attrs.get(STUDY_ATTR.SPEC) or {}
    objective = objective_for(str(spec.get("objective") or DEFAULT_OBJECTIVE))
    number = select_row(
        front,
        metrics,
        data.directions,
        select=select,
        where=where,
        direction_of=objective.metric_direction,
    )
    chosen = next(t for t in trials if t.number == number)
    return Selection(chosen, select, where, front_list)
