"""What every driver shares: the study record, the objective, the budget and progress.

Trial records (user attributes, keys below) are the contract the report and the export read;
they are written here and nowhere else.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import MooSearchError, SpecError, StorageError
from moo_search.spec import Dimension, StudySpec

__all__ = [
    "ATTR",
    "STUDY_ATTR",
    "Evaluation",
    "StudyContext",
    "StudyProgress",
    "TrialRunner",
    "artifact_hashes",
    "base_params",
    "count_states",
    "make_evaluator",
    "open_study",
    "reference_point",
    "sha256_file",
    "study_home",
]

logger = logging.getLogger("moo_search")


class ATTR:
    """Trial user-attribute keys."""

    METRICS = "moo:metrics"  # {"val": {...}, "test": {...}}
    COST = "moo:cost"
    CONFIG = "moo:config"  # the resolved trial config (plain data)
    PARAMS = "moo:params"  # the searched dotted-path params
    ARTIFACTS = "moo:artifact_dir"
    ARTIFACT_SHA256 = "moo:artifact_sha256"  # {relative path: SHA-256} of every artifact file
    BACKBONE = "moo:backbone"  # the collaborative backbone: name, params, SHA-256 of W
    FAIL = "moo:fail_reason"
    CONSTRAINTS = "moo:constraints"  # violations, <= 0 is feasible
    GENERATION = "moo:generation"
    ANCHOR = "moo:anchor"  # "base" or a named enqueued config
    DERIVED_FROM = "moo:derived_from"  # a re-ranking variant of this fine-tune (trial number)
    SLOT = "moo:pymoo_slot"


class STUDY_ATTR:
    """Study user-attribute keys."""

    SPEC = "moo:spec"
    OBJECTIVES = "moo:objectives"
    REFERENCE = "moo:reference_point"
    BASELINES = "moo:baselines"
    REFERENCE_FRONT = "moo:reference_front"  # baselines x re-ranking grid, non-dominated
    ENQUEUED = "moo:enqueued"
    VERSION = "moo:version"
    STUDY_ID = "moo:study_id"  # a random id given at creation; names the study's home


Metrics = dict[str, dict[str, float]]


@dataclass
class Evaluation:
    """What an objective returns for one trial."""

    metrics: Metrics  # {"val": {...}, "test": {...}}
    cost: dict[str, float] = field(default_factory=dict)
    # inference-only variants: [{"knobs": {path: value}, "metrics": Metrics}]
    variants: list[dict[str, Any]] = field(default_factory=list)
    backbone: dict[str, Any] = field(default_factory=dict)  # name, params, sha256 of W


Evaluator = Callable[[dict[str, Any], StudySpec, Path | None], Evaluation]
"""(params, resolved spec, artifact dir) -> :class:`Evaluation`."""


@dataclass
class StudyProgress:
    study: str
    complete: int
    budget: int
    failed: int
    running: int
    hypervolume: float | None
    reference_point: list[float] | None
    eta_seconds: float | None
    last_trial: int | None = None
    last_state: str = ""
    last_reason: str = ""
    variants: int = 0  # re-ranking variants recorded beside the fine-tunes

    def line(self) -> str:
        hv = f"HV {self.hypervolume:.4g}" if self.hypervolume is not None else "HV -"
        eta = f"ETA {_fmt_secs(self.eta_seconds)}" if self.eta_seconds is not None else "ETA -"
        last = ""
        if self.last_trial is not None:
            last = f" · trial {self.last_trial} {self.last_state.lower()}"
            if self.last_reason:
                last += f": {self.last_reason[:120]}"
        extra = f" (+{self.variants} re-ranked variants)" if self.variants else ""
        return (
            f"[{self.study}] {self.complete}/{self.budget} complete{extra}, {self.failed} failed, "
            f"{self.running} running · {hv} · {eta}{last}"
        )


def _fmt_secs(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# --------------------------------------------------------------------------- objectives


def sweep_grid(spec: StudySpec) -> list[dict[str, float]]:
    """Re-ranking settings every fine-tune is also evaluated at (``driver.sweep_rerank``):
    the reference front's grid, when the study searches a re-ranking knob."""
    from moo_search.reference import RERANK_KNOBS, rerank_grid

    if not spec.driver.sweep_rerank or not any(k in spec.search_space for k in RERANK_KNOBS):
        return []
    return rerank_grid(spec)


def _run_trial_evaluator(params: dict[str, Any], spec: StudySpec, art: Path | None) -> Evaluation:
    from moo_search.trial import run_trial

    result = run_trial(spec, artifact_dir=art, sweep=sweep_grid(spec))
    return Evaluation(result.metrics, result.cost, result.sweep, result.backbone)


def _problem_evaluator(spec: StudySpec) -> Evaluator:
    from moo_search.problems import PROBLEMS

    problem = PROBLEMS[spec.objective](**spec.problem)

    def evaluate(params: dict[str, Any], _spec: StudySpec, _art: Path | None) -> Evaluation:
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

    def evaluate(params: dict[str, Any], spec: StudySpec, art: Path | None) -> Evaluation:
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
    from moo_search.problems import PROBLEMS

    if spec.uses_default_trial:
        return _run_trial_evaluator
    if spec.objective in PROBLEMS:
        return _problem_evaluator(spec)
    return _import_evaluator(spec.objective)


def search_space(spec: StudySpec) -> dict[str, Dimension]:
    """The spec's dimensions; a built-in problem with none gets x0..x{n-1} in [0, 1]."""
    from moo_search.problems import PROBLEMS

    if spec.search_space or spec.objective not in PROBLEMS:
        return dict(spec.search_space)
    problem = PROBLEMS[spec.objective](**spec.problem)
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


@dataclass
class StudyContext:
    spec: StudySpec
    study: Any  # optuna.Study
    storage_url: str
    study_dir: Path
    evaluate: Evaluator
    space: dict[str, Dimension]
    n_trials: int
    timeout: float | None = None
    on_progress: Callable[[StudyProgress], None] | None = None
    started: float = field(default_factory=time.monotonic)
    durations: list[float] = field(default_factory=list)
    session_failures: int = 0
    progress_every: float = 2.0  # seconds between progress reports
    last_report: float = -1e9
    seen: set[int] = field(default_factory=set)
    front: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    hv: float | None = None

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.spec.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.spec.objectives]


def open_study(
    spec: StudySpec, *, storage: Any, study_name: str, create: bool, sampler: Any = None
) -> Any:
    import optuna

    directions = [o.direction for o in spec.objectives]
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,
            sampler=sampler,
            load_if_exists=True,
        )
        existing = study.user_attrs.get(STUDY_ATTR.OBJECTIVES)
        mine = [o.model_dump() for o in spec.objectives]
        if existing is not None and existing != mine:
            raise StorageError(
                f"study {study_name!r} already exists with objectives {existing}; this spec has "
                f"{mine}. Use another --study-name or storage to start a new study."
            )
        if existing is None:
            import uuid

            from moo_search import __version__

            study.set_user_attr(STUDY_ATTR.STUDY_ID, uuid.uuid4().hex)
            study.set_user_attr(STUDY_ATTR.OBJECTIVES, mine)
            study.set_user_attr(STUDY_ATTR.SPEC, spec.to_dict())
            study.set_user_attr(STUDY_ATTR.VERSION, __version__)
        return study
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:
        raise StorageError(
            f"no study named {study_name!r} in this storage; start it with `moo-search run`"
        ) from None


def study_home(spec: StudySpec, url: str, study: Any) -> Path:
    """Where a study's artifacts, report and spec.yaml live.

    The spec's own study (its storage, its name) keeps the simple layout ``reports/<name>/``;
    any other study run from the spec (``--storage`` / ``--study-name``) gets a directory of its
    own inside it, named by the study and the id recorded in its storage, so two studies never
    write over each other's artifacts.
    """
    if url == spec.storage_url and study.study_name == spec.name:
        return spec.study_dir
    sid = str(study.user_attrs.get(STUDY_ATTR.STUDY_ID) or study._study_id)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", study.study_name).strip("-.") or "study"
    return spec.study_dir / f"{slug}-{sid[:8]}"


def count_states(study: Any) -> dict[str, int]:
    """Trials per state; re-ranking variants (``DERIVED``) are not counted as COMPLETE: the
    budget counts fine-tunes."""
    from optuna.trial import TrialState

    counts = {s.name: 0 for s in TrialState}
    counts["DERIVED"] = 0
    for t in study.get_trials(deepcopy=False):
        if ATTR.DERIVED_FROM in t.user_attrs:
            counts["DERIVED"] += 1
        else:
            counts[t.state.name] += 1
    return counts


def reference_point(ctx: StudyContext) -> list[float] | None:
    """The study's fixed hypervolume reference point (stored on first use)."""
    from moo_search.pareto import default_reference_point

    stored = ctx.study.user_attrs.get(STUDY_ATTR.REFERENCE)
    if stored is not None:
        return [float(v) for v in stored]
    if ctx.spec.driver.reference_point is not None:
        ref = [float(v) for v in ctx.spec.driver.reference_point]
    else:
        F = _complete_values(ctx.study)
        if len(F) == 0:
            return None
        ref = default_reference_point(F, ctx.directions).tolist()
    ctx.study.set_user_attr(STUDY_ATTR.REFERENCE, ref)
    return ref


def _complete_values(study: Any, feasible_only: bool = False) -> np.ndarray:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if feasible_only and any(v > 0 for v in t.user_attrs.get(ATTR.CONSTRAINTS, [])):
            continue
        rows.append(t.values)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(study.directions))


def study_hypervolume(ctx: StudyContext) -> tuple[float | None, list[float] | None]:
    """Hypervolume of the feasible complete trials, kept incrementally: only trials new since
    the last call are merged into the cached front, and HV is recomputed only when it moves."""
    from optuna.trial import TrialState

    from moo_search.pareto import hypervolume, pareto_mask

    ref = reference_point(ctx)
    if ref is None:
        return None, ref
    new = []
    for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number in ctx.seen:
            continue
        ctx.seen.add(t.number)
        if not any(v > 0 for v in t.user_attrs.get(ATTR.CONSTRAINTS, [])):
            new.append(t.values)
    if new:
        F = (
            np.vstack([ctx.front, np.asarray(new, dtype=np.float64)])
            if len(ctx.front)
            else np.asarray(new)
        )
        ctx.front = F[pareto_mask(F, ctx.directions)]
        ctx.hv = hypervolume(ctx.front, ref, ctx.directions) if len(ctx.front) else None
    return ctx.hv, ref


def report_progress(
    ctx: StudyContext, frozen: Any | None = None, *, force: bool = False
) -> StudyProgress | None:
    """Tell ``ctx.on_progress`` (or the log) where the study stands; at most every
    ``ctx.progress_every`` seconds unless ``force`` or the trial failed."""
    now = time.monotonic()
    failed_now = frozen is not None and frozen.state.name == "FAIL"
    if not (force or failed_now) and now - ctx.last_report < ctx.progress_every:
        return None
    ctx.last_report = now
    counts = count_states(ctx.study)
    hv, ref = study_hypervolume(ctx)
    remaining = max(ctx.n_trials - counts["COMPLETE"], 0)
    eta = float(np.mean(ctx.durations)) * remaining if ctx.durations else None
    prog = StudyProgress(
        study=ctx.study.study_name,
        complete=counts["COMPLETE"],
        budget=ctx.n_trials,
        failed=counts["FAIL"],
        running=counts["RUNNING"],
        hypervolume=hv,
        reference_point=ref,
        eta_seconds=eta,
        variants=counts["DERIVED"],
    )
    if frozen is not None:
        prog.last_trial = frozen.number
        prog.last_state = frozen.state.name
        prog.last_reason = str(frozen.user_attrs.get(ATTR.FAIL, ""))
    if ctx.on_progress is not None:
        ctx.on_progress(prog)
    else:
        logger.info(prog.line())
    return prog


# --------------------------------------------------------------------------- one trial


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for path, d in space.items():
        if d.kind == "categorical":
            params[path] = trial.suggest_categorical(path, d.choices)
        elif d.kind == "int":
            params[path] = trial.suggest_int(
                path,
                int(d.low or 0),
                int(d.high or 0),
                log=d.log,
                step=int(d.step) if d.step else 1,
            )
        else:
            params[path] = trial.suggest_float(
                path, float(d.low or 0), float(d.high or 0), log=d.log, step=d.step
            )
    return params


class BudgetReached(Exception):
    """Raised inside a trial that other workers made surplus; recorded as PRUNED."""


class TrialRunner:
    """The Optuna objective: suggest, resolve, evaluate, record. Failures are recorded with
    their reason and re-raised for Optuna to mark the trial FAIL."""

    def __init__(self, ctx: StudyContext) -> None:
        self.ctx = ctx
        self.last_values: list[float] | None = None
        self.last_violations: list[float] = []

    def _surplus(self, trial: Any) -> bool:
        from optuna.trial import TrialState

        ahead = [
            t
            for t in self.ctx.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
            )
            if t.number < trial.number and ATTR.DERIVED_FROM not in t.user_attrs
        ]
        return len(ahead) >= self.ctx.n_trials

    def __call__(self, trial: Any) -> list[float]:
        import optuna

        ctx = self.ctx
        self.last_values = None
        if self._surplus(trial):
            trial.set_user_attr(ATTR.FAIL, "budget already reached by other workers")
            raise optuna.TrialPruned("budget already reached by other workers")
        t0 = time.monotonic()
        try:
            params = suggest(trial, ctx.space)
            trial.set_user_attr(ATTR.PARAMS, params)
            spec = ctx.spec.with_params(params) if ctx.spec.uses_default_trial else ctx.spec
            if spec.uses_default_trial:
                trial.set_user_attr(ATTR.CONFIG, spec.to_dict())
            art = ctx.study_dir / "artifacts" / f"trial_{trial.number:05d}"
            ev = ctx.evaluate(params, spec, art if spec.uses_default_trial else None)
            metrics, cost = ev.metrics, ev.cost
            if spec.uses_default_trial:
                trial.set_user_attr(ATTR.ARTIFACTS, str(art.resolve()))
                # what export and report check: the files are this trial's, not a later run's
                trial.set_user_attr(ATTR.ARTIFACT_SHA256, artifact_hashes(art))
            if ev.backbone:
                trial.set_user_attr(ATTR.BACKBONE, ev.backbone)
            trial.set_user_attr(ATTR.METRICS, _finite(metrics))
            trial.set_user_attr(ATTR.COST, _finite({"val": cost})["val"])
            from moo_search.trial import metric_value

            values = [metric_value(metrics, cost, m) for m in ctx.metric_names]
            bad = [m for m, v in zip(ctx.metric_names, values) if not math.isfinite(v)]
            if bad:
                raise MooSearchError(f"objective(s) {bad} are not finite: {values}")
            violations = [
                c.violation(metric_value(metrics, cost, c.metric)) for c in spec.constraints
            ]
            trial.set_user_attr(ATTR.CONSTRAINTS, violations)
            self.last_violations = violations
            _set_constraints(trial, spec, violations)
            for v in ev.variants:
                _add_variant(ctx, trial, spec, params, cost, v)
        except optuna.TrialPruned:
            raise
        except BaseException as e:
            reason = (
                "interrupted (Ctrl-C)"
                if isinstance(e, KeyboardInterrupt)
                else f"{type(e).__name__}: {e}"
            )
            trial.set_user_attr(ATTR.FAIL, reason[:2000])
            ctx.session_failures += not isinstance(e, KeyboardInterrupt)
            raise
        ctx.durations.append(time.monotonic() - t0)
        self.last_values = values
        return values


def _add_variant(
    ctx: StudyContext,
    parent: Any,
    spec: StudySpec,
    params: dict[str, Any],
    cost: dict[str, float],
    variant: dict[str, Any],
) -> None:
    """Record an inference-only variant of the fine-tune ``parent`` as its own COMPLETE trial
    (same adapter artifact, its own config and metrics), linked by ``ATTR.DERIVED_FROM``."""
    import inspect

    from optuna.trial import TrialState, create_trial

    from moo_search.trial import metric_value

    knobs: dict[str, float] = variant["knobs"]
    metrics = variant["metrics"]
    values = [metric_value(metrics, cost, m) for m in ctx.metric_names]
    if not all(math.isfinite(v) for v in values):
        return
    vspec = spec.with_params(knobs)
    violations = [c.violation(metric_value(metrics, cost, c.metric)) for c in spec.constraints]
    vparams = {**params, **{k: v for k, v in knobs.items() if k in parent.distributions}}
    attrs = {
        ATTR.DERIVED_FROM: parent.number,
        ATTR.PARAMS: vparams,
        ATTR.CONFIG: vspec.to_dict(),
        ATTR.METRICS: _finite(metrics),
        ATTR.COST: _finite({"val": cost})["val"],
        ATTR.CONSTRAINTS: violations,
    }
    for key in (ATTR.ARTIFACTS, ATTR.ARTIFACT_SHA256, ATTR.BACKBONE):
        if key in parent.user_attrs:
            attrs[key] = parent.user_attrs[key]
    kwargs: dict[str, Any] = {}
    if violations and "constraints" in inspect.signature(create_trial).parameters:
        kwargs["constraints"] = {str(c): float(v) for c, v in zip(spec.constraints, violations)}
    # (Optuna 4.x has no such argument: its samplers read ATTR.CONSTRAINTS via constraints_func)
    frozen = create_trial(
        state=TrialState.COMPLETE,
        values=values,
        params=vparams,
        distributions=dict(parent.distributions),
        user_attrs=attrs,
        **kwargs,
    )
    ctx.study.add_trial(frozen)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by POSIX path relative to it."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _finite(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """JSON-safe: NaN/inf become None (the report shows them as missing)."""
    return {
        p: {k: (float(v) if math.isfinite(float(v)) else None) for k, v in m.items()}
        for p, m in metrics.items()
    }


def _set_constraints(trial: Any, spec: StudySpec, violations: list[float]) -> None:
    """Optuna >= 5 reads constraints set on the trial; 4.x reads them via constraints_func."""
    if not violations or not hasattr(trial, "set_constraint"):
        return
    for c, v in zip(spec.constraints, violations):
        trial.set_constraint(str(c), float(v))


def constraints_func(frozen: Any) -> list[float]:
    """For Optuna 4.x samplers: the violations the runner stored (<= 0 is feasible)."""
    return [float(v) for v in frozen.user_attrs.get(ATTR.CONSTRAINTS, [])]
