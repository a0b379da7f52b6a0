"""A study's reference front: the classic baselines through the same re-rankers.

Every ranking baseline (:data:`moo_search.recommender.registries.BASELINES`) is passed through the
project's re-rankers over a grid of the re-ranking knobs spanning each knob's whole useful
range (:data:`FULL_RANGE`, widened to the study's searched range where that is wider: a
researcher compares with the best the classic methods can do, not with the corner the study
searches), paired with the count baselines for the business tasks (its own scores for click
AUC, like-rates for conversion, mean ratings for satisfaction), evaluated with the study's
objectives and constraints. The feasible non-dominated points on validation (as the driver
sees trials) are the reference front, judged on validation and test: a fine-tune earns its
place only where no reference point dominates it.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, TypedDict

import numpy as np

from moo_search import pareto
from moo_search.recommender.config import RerankConfig
from moo_search.recommender.spec import RecommenderSpec

__all__ = [
    "DEFAULT_GRID",
    "FULL_RANGE",
    "RERANK_KNOBS",
    "ReferencePoint",
    "reference_axes",
    "reference_front",
    "reference_grid",
    "rerank_grid",
]

logger = logging.getLogger("moo_search")

RERANK_KNOBS = ("rerank.mmr_lambda", "rerank.pop_penalty")
"""Knobs that change the lists but not the weights (swept for the reference front)."""

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "rerank.mmr_lambda": (1.0, 0.9, 0.75, 0.5, 0.3),
    "rerank.pop_penalty": (0.0, 0.1, 0.25, 0.5, 1.0),
}
GRID_POINTS = 5  # values per searched float knob, evenly spaced over its range

FULL_RANGE: dict[str, tuple[float, float]] = {
    "rerank.mmr_lambda": (0.2, 1.0),
    "rerank.pop_penalty": (0.0, 1.0),
}
"""The useful range of each re-ranking knob: the reference front sweeps all of it (below
mmr_lambda 0.2 the lists stop depending on relevance; a pop_penalty of 1 already pushes
the head out of every list)."""
REFERENCE_POINTS = 6  # values per knob on the reference front's grid


class ReferencePoint(TypedDict):
    """One stored point of the reference front (JSON in the study's user attributes)."""

    baseline: str
    knobs: dict[str, float]
    val: dict[str, float]
    test: dict[str, float]


def rerank_grid(spec: RecommenderSpec) -> list[dict[str, float]]:
    """Settings of the re-ranking knobs: the searched ones on a grid over their range (the
    others at the base config's value); the default grid when the study searches none."""
    searched = {k: d for k, d in spec.search_space.items() if k in RERANK_KNOBS}
    if not searched:
        axes = {k: list(v) for k, v in DEFAULT_GRID.items()}
    else:
        base = spec.rerank.model_dump()
        axes = {}
        for knob in RERANK_KNOBS:
            dim = searched.get(knob)
            if dim is None:
                axes[knob] = [float(base[knob.split(".", 1)[1]])]
            elif dim.kind == "categorical":
                axes[knob] = [float(c) for c in dim.choices or []]
            else:
                axes[knob] = [
                    float(v)
                    for v in np.linspace(float(dim.low or 0), float(dim.high or 0), GRID_POINTS)
                ]
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def reference_axes(spec: RecommenderSpec) -> dict[str, list[float]]:
    """Each re-ranking knob's values on the reference front's grid: :data:`REFERENCE_POINTS`
    evenly spaced over :data:`FULL_RANGE`, widened to the searched range (and choices)."""
    axes: dict[str, list[float]] = {}
    for knob, (lo, hi) in FULL_RANGE.items():
        dim = spec.search_space.get(knob)
        extra: list[float] = []
        if dim is not None and dim.kind == "categorical":
            extra = [float(c) for c in dim.choices or []]
        elif dim is not None:
            lo, hi = min(lo, float(dim.low or lo)), max(hi, float(dim.high or hi))
        values = np.linspace(lo, hi, REFERENCE_POINTS).round(6).tolist() + extra
        axes[knob] = sorted(set(values), reverse=knob == "rerank.mmr_lambda")
    return axes


def reference_grid(spec: RecommenderSpec) -> list[dict[str, float]]:
    """Every setting of the re-ranking knobs the reference front evaluates each baseline at:
    the product of :func:`reference_axes`, whatever narrower range the study searches."""
    axes = reference_axes(spec)
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def _metric(metrics: dict[str, float], name: str) -> float | None:
    v = metrics.get(name)
    return None if v is None or not np.isfinite(v) else float(v)


def reference_front(spec: RecommenderSpec, data: Any, ctx: Any = None) -> dict[str, Any]:
    """``{"points": [ReferencePoint, ...], "grid": [...], "axes": {knob: [low, high, n]},
    "evaluated": n, "seconds": s, "missing": [objective metrics no baseline reports]}`` for
    the study of ``spec``.

    ``data`` is the trial's :class:`~moo_search.recommender.prepare.PreparedData` (dataset,
    split, features). Every baseline is scored once and re-ranked at every grid point;
    validation decides the front (as the driver sees trials), and only its points are
    evaluated on test.
    """
    from moo_search.recommender.baselines.ranking import BaselineContext, baseline_names
    from moo_search.recommender.memory import keep_scores

    t_start = time.perf_counter()
    grid = reference_grid(spec)
    ctx = ctx if ctx is not None else BaselineContext.of(spec, data)  # fitted ones reused
    scorers: dict[str, tuple[Any, float]] = {}
    candidates: list[ReferencePoint] = []
    for name in baseline_names(data.split):
        t0 = time.perf_counter()
        try:
            scores = keep_scores(ctx.scorer(name), data.split.n_users, data.split.n_items)
        except Exception as e:  # a baseline that fails is left out (one warning names it)
            ctx.fail(name, e)
            continue
        scorers[name] = (scores, time.perf_counter() - t0)
        candidates += [{"baseline": name, "knobs": knobs, "val": {}, "test": {}} for knobs in grid]
    fill = _PointMetrics(spec, data, ctx, scorers)
    for point in candidates:
        fill(point, "val")
    front = _feasible_front(spec, candidates)
    for point in front:
        fill(point, "test")
    secs = time.perf_counter() - t_start
    logger.info(
        "reference front: %d points from %d baseline settings in %.1fs",
        len(front),
        len(candidates),
        secs,
    )
    axes = reference_axes(spec)
    return {
        "points": front,
        "grid": grid,
        "axes": {k: [min(v), max(v), len(v)] for k, v in axes.items()},
        "evaluated": len(candidates),
        "seconds": secs,
        "missing": sorted(fill.missing),
    }


class _PointMetrics:
    """Fills a reference point's metrics on one split part: its baseline's kept scores
    re-ranked at its knobs, the count baselines' task metrics, its own click AUC (from its
    scores; a click AUC needs no calibration) and its fit seconds."""

    def __init__(
        self, spec: RecommenderSpec, data: Any, ctx: Any, scorers: dict[str, tuple[Any, float]]
    ) -> None:
        from moo_search.recommender.baselines.ranking import COUNT_BASELINE
        from moo_search.recommender.baselines.tasks import count_task_baselines
        from moo_search.recommender.metrics import is_task_metric

        self.spec, self.data, self.ctx, self.scorers = spec, data, ctx, scorers
        self.counts = count_task_baselines(ctx)  # conversion and satisfaction from counts
        self.names = {*(o.metric for o in spec.objectives), *(c.metric for c in spec.constraints)}
        # the tasks on new items: a content baseline's own (calibrated on validation's new
        # items), else the counts' (which know nothing of a new item)
        self.cold_tasks: dict[str, dict[str, dict[str, float]]] = {}
        if any(is_task_metric(m) and m.startswith("cold_item/") for m in self.names):
            from moo_search.recommender.baselines.cold_tasks import study_cold_task_baselines

            per_part = study_cold_task_baselines(ctx)
            self.cold_tasks = {
                part: {n: per[n] if n in per else per.get(COUNT_BASELINE, {}) for n in scorers}
                for part, per in per_part.items()
            }
        self.wants_click = any(m.startswith("click_") for m in self.names)
        self.click: dict[tuple[str, str], float] = {}
        self.missing: set[str] = set()
        self.ks = spec.requested_ks()
        # the current baseline's ScoreBook: points come a baseline at a time, each ranked
        # from its candidates (one scoring pass per part), one book held at a time
        self.book: tuple[str, Any] = ("", None)

    def __call__(self, point: ReferencePoint, part: str) -> None:
        from moo_search.recommender.baselines.tasks import score_click_auc
        from moo_search.recommender.candidates import ScoreBook, book_depth
        from moo_search.recommender.evaluate import evaluate_lists

        spec, data = self.spec, self.data
        scores, fit = self.scorers[point["baseline"]]
        knobs = point["knobs"]
        if self.book[0] != point["baseline"]:
            depth = book_depth([spec.eval.k, *self.ks], [spec.rerank])
            book = ScoreBook(scores, data.split, data.features, spec.eval, depth=depth)
            self.book = (point["baseline"], book)
        res, _ = evaluate_lists(
            scores,
            data.ds,
            data.split,
            eval_cfg=spec.eval,
            rerank_cfg=RerankConfig(
                mmr_lambda=knobs["rerank.mmr_lambda"],
                pop_penalty=knobs["rerank.pop_penalty"],
                candidates=spec.rerank.candidates,
            ),
            parts=(part,),
            features=data.features,
            ks=self.ks,
            book=self.book[1],
        )
        key = (point["baseline"], part)
        if self.wants_click and key not in self.click:
            self.click[key] = score_click_auc(scores, self.ctx, part)
        own = {"click_auc": self.click[key]} if key in self.click else {}
        counts = self.counts.get(part, {})
        tasks = {k: v for k, v in counts.items() if not k.startswith("click_")}
        tasks.update(self.cold_tasks.get(part, {}).get(point["baseline"], {}))
        full = {**res.get(part, {}), **tasks, **own, "cost/seconds": fit}
        for m in self.names:
            v = _metric(full, m)
            if v is None:
                self.missing.add(m)
            else:
                point["val" if part == "val" else "test"][m] = v


def _feasible_front(
    spec: RecommenderSpec, candidates: list[ReferencePoint]
) -> list[ReferencePoint]:
    """The candidates that report every objective and meet the constraints on validation,
    and of those the non-dominated ones."""
    metrics = [o.metric for o in spec.objectives]
    ok = [
        p
        for p in candidates
        if all(m in p["val"] for m in metrics)
        and all(
            c.violation(p["val"][c.metric]) <= 0 for c in spec.constraints if c.metric in p["val"]
        )
    ]
    if not ok:
        return []
    F = np.array([[p["val"][m] for m in metrics] for p in ok])
    mask = pareto.pareto_mask(F, [o.direction for o in spec.objectives])
    return [p for p, keep in zip(ok, mask) if keep]
