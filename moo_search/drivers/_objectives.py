"""Objectives a study can run: the default trial, built-in problems, ``module:function``.

Each becomes an :data:`Evaluator` ``(params, resolved spec, artifact dir) -> Evaluation``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import MooSearchError, SpecError
from moo_search.registry import PROBLEMS
from moo_search.spec import Dimension, StudySpec

__all__ = ["Evaluation", "Evaluator", "base_params", "make_evaluator", "search_space", "sweep_grid"]

Metrics = dict[str, dict[str, float]]


@dataclass
class Evaluation:
    """What an objective returns for one trial."""

    metrics: Metrics  # {"val": {...}, "test": {...}}
    cost: dict[str, float] = field(default_factory=dict)
    # inference-only variants: [{"knobs": {path: value}, "metrics": Metrics}]
    variants: list[dict[str, Any]] = field(default_factory=list)
    backbone: dict[str, Any] = field(default_factory=dict)  # name, params, sha256 of W
    hits: dict[str, Any] = field(default_factory=dict)  # per-user test hits (trial.hits_per_user)


Evaluator = Callable[..., Evaluation]
"""``(params, resolved spec, artifact dir, *, on_rung=None) -> Evaluation``; ``on_rung`` is the
early-stopping hook (only the default trial has rungs; other objectives ignore it)."""


FUSION_KNOBS = {
    "fusion.alpha": "fusion.serve_alpha",
    "fusion.tail_weight": "fusion.serve_tail_weight",
}
"""Searched fusion weight -> the knob that serves a trained tower at another value."""

FUSION_LEVELS = 4
"""Points of a searched fusion weight's range a fine-tune is also served at."""


def sweep_grid(spec: StudySpec) -> list[dict[str, float]]:
    """Inference-only settings a fine-tune (``spec``, its params applied) is also evaluated at:
    the reference front's re-ranking grid, when the study searches a re-ranking knob
    (``driver.sweep_rerank``), then each searched fusion weight at :data:`FUSION_LEVELS`
    points of its range other than the trial's own, one weight at a time
    (``driver.sweep_fusion``; only with a text tower to serve, ``fusion.alpha > 0``)."""
    from moo_search.reference import RERANK_KNOBS, rerank_grid

    grid: list[dict[str, float]] = []
    if spec.driver.sweep_rerank and any(k in spec.search_space for k in RERANK_KNOBS):
        grid += rerank_grid(spec)
    if spec.driver.sweep_fusion and spec.fusion.alpha > 0:
        own = dict(zip(("fusion.alpha", "fusion.tail_weight"), spec.fusion.serving()))
        for path, knob in FUSION_KNOBS.items():
            dim = spec.search_space.get(path)
            if dim is None or dim.kind != "float" or dim.low is None or dim.high is None:
                continue
            points = np.geomspace if dim.log else np.linspace
            for v in points(float(dim.low), float(dim.high), FUSION_LEVELS):
                if v > 0 and not np.isclose(v, own[path]):
                    grid.append({knob: round(float(v), 6)})
    return grid


def _run_trial_evaluator(
    params: dict[str, Any], spec: StudySpec, art: Path | None, *, on_rung: Any = None
) -> Evaluation:
    from moo_search.trial import run_trial

    result = run_trial(spec, artifact_dir=art, sweep=sweep_grid(spec), on_rung=on_rung)
    return Evaluation(result.metrics, result.cost, result.sweep, result.backbone, result.hits)


def _problem_evaluator(spec: StudySpec) -> Evaluator:
    problem = PROBLEMS.get(spec.objective)(**spec.problem)

    def evaluate(
        params: dict[str, Any], _spec: StudySpec, _art: Path | None, **_: Any
    ) -> Evaluation:
        x = np.array([float(params[v]) for v in problem.variables])
        f = problem.evaluate(x)
        metrics = {name: float(v) for name, v in zip(problem.objectives, f)}
        return Evaluation({"val": metrics, "test": dict(metrics)})

    return evaluate


def _import_evaluator(ref: str) -> Evaluator:
    module, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise SpecError(f"cannot import {ref!r}: {e}", field="objective") from None

    def evaluate(params: dict[str, Any], spec: StudySpec, art: Path | None, **_: Any) -> Evaluation:
        out = fn(params, spec)
        if hasattr(out, "metrics") and hasattr(out, "cost"):
            return Evaluation(out.metrics, out.cost, list(getattr(out, "sweep", [])))
        if not isinstance(out, dict):
            raise MooSearchError(
                f"objective {ref} must return a dict of metrics, got {type(out).__name__}"
            )
        metrics = {k: float(v) for k, v in out.items()}
        return Evaluation({"val": metrics, "test": dict(metrics)})

    return evaluate


def make_evaluator(spec: StudySpec) -> Evaluator:
    if spec.uses_default_trial:
        return _run_trial_evaluator
    if spec.objective in PROBLEMS:
        return _problem_evaluator(spec)
    return _import_evaluator(spec.objective)


def search_space(spec: StudySpec) -> dict[str, Dimension]:
    """The spec's dimensions; a built-in problem with none gets x0..x{n-1} in [0, 1]."""
    if spec.search_space or spec.objective not in PROBLEMS:
        return dict(spec.search_space)
    problem = PROBLEMS.get(spec.objective)(**spec.problem)
    return {v: Dimension(kind="float", low=0.0, high=1.0) for v in problem.variables}


def base_params(spec: StudySpec) -> dict[str, Any]:
    """The base config's value of every searched path (the study's anchor trial)."""
    if not spec.uses_default_trial:
        return {}
    raw = spec.to_dict()
    out: dict[str, Any] = {}
    for path, dim in spec.search_space.items():
        node: Any = raw
        for part in path.split("."):
            node = node[part]
        if dim.kind == "categorical":
            if node in (dim.choices or []):
                out[path] = node
        elif dim.low is not None and dim.high is not None and dim.low <= node <= dim.high:
            out[path] = int(node) if dim.kind == "int" else float(node)
    return out


# --------------------------------------------------------------------------- the study
