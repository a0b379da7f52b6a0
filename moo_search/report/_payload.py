"""The JSON the page reads (``<script type="application/json" id="payload">``), described once.

NaN and ±inf never reach the page: numbers that are not finite are sent as ``null``.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["BestValue", "FigureSpec", "Payload", "Row"]


class Row(TypedDict):
    """One trial of the table and of every figure's click-through."""

    n: int  # trial number
    state: str  # COMPLETE, FAIL, PRUNED, RUNNING, WAITING
    anchor: str  # "base", a named enqueued config, or ""
    derived_from: int | None  # the trained trial an inference-only variant reuses
    feasible: bool
    pareto: bool
    reason: str  # why a trial failed or was pruned
    obj: list[float | None]  # validation objective values, in ``Payload.metrics`` order
    test: list[float | None]  # the same metrics on test
    params: dict[str, Any]  # searched dotted paths -> value
    m: list[float | None]  # ``Payload.extra_metrics`` values
    secs: float | None  # wall time
    gen: int | None  # NSGA generation
    artifacts: str  # verified, unverified, none, missing (not on this machine), altered, ""
    artifact_problem: str  # for altered / missing: the trial, the file and both hashes
    curve: list[dict[str, Any]] | None  # [{"step", "values"}] per checkpoint (early stopping)


class BestValue(TypedDict):
    value: float
    trial: int


class FigureSpec(TypedDict):
    """What the page needs of each registered figure (``report._registry.FIGURES``)."""

    id: str
    empty: str  # shown when the figure has nothing to draw
    eager: bool  # drawn at load (others when they come near the viewport)


class Payload(TypedDict):
    study: str
    metrics: list[str]  # objective metrics
    directions: list[str]  # "maximize" | "minimize", per metric
    counts: dict[str, int]  # trials per state (+ DERIVED)
    hv: float | None
    reference_hv: float | None  # the reference front's HV at the same reference point
    reference_points: int
    reference_obj: list[list[float | None]]  # reference-front points, validation
    front_undominated: int | None
    # both fronts judged on test: {"hv", "reference_hv", "undominated", "n_front"} (or None)
    reference_test: dict[str, Any] | None
    reference_axes: dict[str, list[float]]  # inference knob -> [low, high, points]
    reference_verdict: str  # which front has the larger hypervolume, validation and test
    reference_knobs: str  # what the reference front's baselines are swept over (its words)
    # what the objective draws (objective.Panel): {"cards": [{"title", "value", "detail"}],
    # "trial_tables": {trial number: {"header": [...], "rows": [[...]]}}}
    panel: dict[str, Any]
    ref: list[float] | None  # the hypervolume reference point
    best: dict[str, BestValue]
    params: list[str]
    rows: list[Row]
    base_config: dict[str, Any] | None
    export_base: str  # "moo-search export <target>", shell-quoted
    slug: str
    knee: int | None
    compromise: int | None
    pseudo_weights: dict[str, list[float]]
    tradeoffs: dict[str, list[dict[str, float]]]
    figures: dict[str, dict[str, Any]]  # element id -> plotly figure
    figure_specs: list[FigureSpec]
    baselines: dict[str, dict[str, float]]  # baseline -> validation metrics
    extra_metrics: list[str]  # the table's "all metrics" columns
