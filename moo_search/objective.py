"""The objective protocol: what a study evaluates, as the engine sees it.

The engine (spec, drivers, study storage, Pareto numerics, the dashboard, selection) runs any
objective through :class:`Objective`; it names no dataset, model, baseline or metric. An
objective says:

- its spec class (``spec_class``: the engine's :class:`~moo_search.spec.StudySpec` or a subclass
  with sections of its own; search-space paths point into them when ``searches_spec``);
- its search space and its anchor (``search_space``, ``base_params``);
- how one trial is evaluated (``evaluator(spec) -> Evaluator``: params -> :class:`Evaluation`:
  objective values and metrics on validation and test, cost, inference-only variants, and
  what else it records on the trial by name), with the early-stopping rung hook when
  ``has_rungs``;
- which trials it evaluates together (``fused_evaluator(spec)``: ``driver.fuse``, trials that
  share work, e.g. fine-tunes over one frozen base; none by default);
- what it fetches before any worker starts (``prepare``: e.g. a dataset);
- what it computes once per study (``setup_study``: e.g. baselines and a reference front);
- what it adds to the dashboard: its columns and settings (``report_extras``) and a panel it
  draws itself, cards, lines and per-trial tables in its own words (``report_panel``);
- where it exports a model (``exports_model``), how a chosen trial's bundle is written,
  verified, registered and served (``export``, ``verify_export``, ``register_export``,
  ``load_pyfunc``); every other objective's trial exports as a sealed selection bundle of its
  params and values (:func:`moo_search.export.export_selection`).

Objectives are found by name in :data:`moo_search.registry.OBJECTIVES` (the default
``run_trial`` is the language-model recommender, :mod:`moo_search.recommender.objective`);
a built-in problem (:data:`~moo_search.registry.PROBLEMS`) and ``package.module:function``
are objectives too (:func:`objective_for`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from moo_search.errors import MooSearchError, SpecError
from moo_search.registry import OBJECTIVES, PROBLEMS
from moo_search.spec import Dimension, StudySpec

if TYPE_CHECKING:
    from moo_search.report import StudyData

__all__ = [
    "Card",
    "EvalRequest",
    "Evaluation",
    "Evaluator",
    "GroupEvaluator",
    "MissingMetric",
    "Objective",
    "Panel",
    "ReportExtras",
    "TrialTable",
    "metric_value",
    "objective_for",
]

Metrics = dict[str, dict[str, float]]


@dataclass
class Evaluation:
    """What an objective returns for one trial."""

    metrics: Metrics  # {"val": {...}, "test": {...}}
    cost: dict[str, float] = field(default_factory=dict)
    # inference-only variants: [{"knobs": {path: value}, "metrics": Metrics, "records": {...}}]
    variants: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    """What else the objective records on the trial, by name, each stored as the trial's
    ``moo:<name>`` attribute (plain data, :func:`moo_search.study.record_key`); a variant
    inherits its trained trial's records unless it gives its own, except those the objective
    names in :attr:`Objective.own_records`. The engine reads none of them: an objective's
    :meth:`~Objective.report_panel` does."""


Evaluator = Callable[..., Evaluation]
"""``(params, resolved spec, artifact dir, *, on_rung=None) -> Evaluation``; ``on_rung`` is the
early-stopping hook (only objectives with ``has_rungs`` call it)."""


@dataclass
class EvalRequest:
    """One trial of a group evaluated together (``driver.fuse``): an :data:`Evaluator`'s
    arguments."""

    params: dict[str, Any]
    spec: Any  # the resolved spec
    artifact_dir: Path | None = None
    on_rung: Callable[..., None] | None = None


GroupEvaluator = Callable[[list[EvalRequest]], list["Evaluation | BaseException"]]
"""``(requests) -> [Evaluation, or the exception that ended that trial]``, in order: trials
evaluated together (one failing never fails the others)."""


class MissingMetric(KeyError):
    """A metric the spec names that the objective did not report (its message, unquoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def metric_value(
    metrics: Metrics, cost: dict[str, float], metric: str, split: str = "val"
) -> float:
    """One named value of a trial: ``cost/<name>`` from its cost, else ``metrics[split]``."""
    if metric.startswith("cost/"):
        return float(cost[metric.removeprefix("cost/")])
    if metric not in metrics.get(split, {}):
        got = sorted(metrics.get(split, {}))
        shown = ", ".join(got[:12]) + (f", ... ({len(got)} in all)" if len(got) > 12 else "")
        hint = (
            "; a sliced metric is absent when no user falls in its slice" if "/" in metric else ""
        )
        raise MissingMetric(
            f"the objective reported no {metric!r} on {split} (it reported: {shown or 'none'})"
            f"{hint}; the spec's objectives and constraints name what it must report"
        )
    return float(metrics[split][metric])


@dataclass(frozen=True)
class ReportExtras:
    """What the dashboard shows beyond the generic page, for one objective's studies."""

    served_knobs: dict[str, str] = field(default_factory=dict)
    """An inference-only knob -> the trained field it serves at another value (a column of
    the trial table: each trial's served value, as trained where no variant changed it)."""
    shows_config: bool = False
    """The study's base config is shown (it means something only when dimensions point into it)."""
    reference_knobs: str = "inference knobs"
    """What the reference front's baselines are swept over, in the objective's words."""


@dataclass(frozen=True, kw_only=True)
class Card:
    """A figure in the dashboard's header: a title, its value, one line of detail."""

    title: str
    value: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class TrialTable:
    """A table shown under a selected trial's objectives: a header, then rows of cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, kw_only=True)
class Panel:
    """What an objective draws on its study's dashboard, and adds to the comparison lines that
    ``run`` and ``report`` print, in its own words (:meth:`Objective.report_panel`)."""

    reference_lines: tuple[str, ...] = ()
    """Printed within the reference-front comparison (after the validation lines)."""
    lines: tuple[str, ...] = ()
    """Printed after the reference-front comparison."""
    cards: tuple[Card, ...] = ()
    """Shown in the header, after the reference front's."""
    trial_tables: dict[int, TrialTable] = field(default_factory=dict)
    """Shown under a selected trial's objectives, by trial number."""
    facts: dict[str, Any] = field(default_factory=dict)
    """The figures behind the lines, by name, for scripts and tests (plain data)."""


class Objective:
    """An objective a study can run; subclass it and register an instance in
    :data:`~moo_search.registry.OBJECTIVES` (``OBJECTIVES.register("name", MyObjective())``).

    The defaults suit an objective that takes the searched params as they are and keeps no
    artifacts (the built-in problems, ``package.module:function``).
    """

    spec_class: type[StudySpec] = StudySpec
    """The spec of a study of this objective (a subclass adds the objective's sections)."""
    searches_spec = False
    """Search dimensions are dotted paths into the spec: a trial runs the study's spec with its
    params applied (``spec.with_params``), and its resolved config is recorded."""
    keeps_artifacts = False
    """Each trial writes an artifact directory (hashed, for report and export to check)."""
    has_rungs = False
    """Evaluation calls ``on_rung(step, metrics, cost)`` (multi-objective early stopping)."""
    own_records: frozenset[str] = frozenset()
    """Records (:attr:`Evaluation.records`) a variant never inherits from its trained trial:
    they describe that trial's own outputs (e.g. its per-user test outcomes)."""
    exports_model = False
    """``export`` writes a model that ``verify_export`` re-trains, ``register_export`` logs
    and ``load_pyfunc`` serves; without it a trial exports as a selection bundle."""

    def evaluator(self, spec: StudySpec) -> Evaluator:
        raise NotImplementedError

    def fused_evaluator(self, spec: StudySpec) -> tuple[int, GroupEvaluator] | None:
        """(how many trials a worker evaluates together, how) under ``driver.fuse``; None:
        one at a time (the default: an objective that trains nothing shares nothing)."""
        return None

    def search_space(self, spec: StudySpec) -> dict[str, Dimension]:
        return dict(spec.search_space)

    def base_params(self, spec: StudySpec) -> dict[str, Any]:
        """The params of the study's anchor trial (none: no anchor)."""
        return {}

    def steps(self, spec: StudySpec) -> int:
        """A trial's length in rung steps (for ``has_rungs``)."""
        return 1

    def prepare(self, spec: StudySpec) -> None:
        """Fetched once before a run or a worker starts its trials (a dataset into a cache)."""

    def setup_study(self, spec: StudySpec, study: Any) -> None:
        """Computed once per study, on its first run (baselines, a reference front ...)."""

    def study_record(self, spec: StudySpec) -> dict[str, Any]:
        """What identifies the study's fixed inputs (e.g. its data), in the study record: a
        resume with other inputs is refused."""
        return {}

    def read_study_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A study record stored by older code (:meth:`study_record`), in today's shape, so
        that a resume compares like with like (default: as stored)."""
        return record

    def metric_direction(self, metric: str) -> str:
        """``maximize`` or ``minimize`` for a metric that is not one of the study's objectives
        (``export --select best:METRIC``)."""
        return "maximize"

    def report_extras(self, study: Any) -> ReportExtras:
        """What the dashboard adds for this objective's studies (see :class:`ReportExtras`)."""
        return ReportExtras()

    def report_panel(self, study: Any, data: StudyData) -> Panel:
        """What this objective draws on its study's dashboard beyond the generic page: cards,
        comparison lines and per-trial tables (``data`` is the report's view of ``study``)."""
        return Panel()

    def export(self, request: Any) -> Path:
        """Write the model bundle of the trial a :class:`moo_search.export.ExportRequest`
        chooses (``moo-search export``; only where ``exports_model``: every other objective's
        trial exports as the engine's selection bundle, :func:`moo_search.export.
        export_selection`)."""
        raise NotImplementedError

    def verify_export(self, out: Path) -> dict[str, Any]:
        """Re-run an exported model's trial and compare (``export --verify``, only where
        ``exports_model``): ``{"reproduced", "max_abs_diff", "metrics_checked",
        "tolerance_abs", "worst_metric"}``."""
        raise NotImplementedError

    def register_export(self, out: Path, name: str, tracking_uri: str | None) -> Any:
        """Register an exported model as a new version of ``name`` (``export --register``,
        only where ``exports_model``); returns the version (``.name``, ``.version``)."""
        raise NotImplementedError

    def load_pyfunc(self, path: str) -> Any:
        """An exported model as MLflow's pyfunc loads it (only where ``exports_model``; the
        old ``loader_module`` path of bundles logged before a move reaches it this way)."""
        raise NotImplementedError


class ProblemObjective(Objective):
    """A built-in test problem with a known front (``objective: zdt1``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _problem(self, spec: StudySpec) -> Any:
        return PROBLEMS.get(self.name)(**spec.problem)

    def evaluator(self, spec: StudySpec) -> Evaluator:
        problem = self._problem(spec)

        def evaluate(params: dict[str, Any], _spec: Any, _art: Path | None, **_: Any) -> Evaluation:
            x = np.array([float(params[v]) for v in problem.variables])
            f = problem.evaluate(x)
            metrics = {name: float(v) for name, v in zip(problem.objectives, f)}
            return Evaluation({"val": metrics, "test": dict(metrics)})

        return evaluate

    def search_space(self, spec: StudySpec) -> dict[str, Dimension]:
        """The spec's dimensions, else x0..x{n-1} in [0, 1]."""
        if spec.search_space:
            return dict(spec.search_space)
        return {
            v: Dimension(kind="float", low=0.0, high=1.0) for v in self._problem(spec).variables
        }


class FunctionObjective(Objective):
    """``package.module:function``: ``function(params, spec)`` returns a dict of metrics (or an
    object with ``metrics`` and ``cost``)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def evaluator(self, spec: StudySpec) -> Evaluator:
        ref = self.ref
        module, _, name = ref.partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise SpecError(f"cannot import {ref!r}: {e}", field="objective") from None

        def evaluate(params: dict[str, Any], spec: Any, art: Path | None, **_: Any) -> Evaluation:
            out = fn(params, spec)
            if hasattr(out, "metrics") and hasattr(out, "cost"):
                variants = getattr(out, "variants", None) or getattr(out, "sweep", None) or []
                records = dict(getattr(out, "records", None) or {})
                return Evaluation(out.metrics, out.cost, list(variants), records)
            if not isinstance(out, dict):
                raise MooSearchError(
                    f"objective {ref} must return a dict of metrics, got {type(out).__name__}"
                )
            metrics = {k: float(v) for k, v in out.items()}
            return Evaluation({"val": metrics, "test": dict(metrics)})

        return evaluate


def objective_for(name: str) -> Objective:
    """The objective a spec's ``objective`` names: registered, a problem, or an import path."""
    if ":" in name:  # (first: a module path never loads the registered objectives)
        return FunctionObjective(name)
    if name in PROBLEMS:
        return ProblemObjective(name)
    obj: Objective = OBJECTIVES.get(name)
    return obj
