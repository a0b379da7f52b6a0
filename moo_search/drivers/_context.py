"""A study run in progress: its context, budget counts, hypervolume and progress lines."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.objective import Evaluator, GroupEvaluator, Objective, objective_for
from moo_search.spec import Dimension, StudySpec
from moo_search.study import ATTR, count_states, is_feasible, stored_reference_point

__all__ = ["StudyContext", "StudyProgress", "report_progress", "study_hypervolume"]

logger = logging.getLogger("moo_search")


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
    variants: int = 0  # inference-only variants recorded beside the trials

    def line(self) -> str:
        hv = f"HV {self.hypervolume:.4g}" if self.hypervolume is not None else "HV -"
        eta = f"ETA {_fmt_secs(self.eta_seconds)}" if self.eta_seconds is not None else "ETA -"
        last = ""
        if self.last_trial is not None:
            last = f" · trial {self.last_trial} {self.last_state.lower()}"
            if self.last_reason:
                last += f": {self.last_reason[:120]}"
        extra = f" (+{self.variants} inference-only variants)" if self.variants else ""
        return (
            f"[{self.study}] {self.complete}/{self.budget} complete{extra}, {self.failed} failed, "
            f"{self.running} running · {hv} · {eta}{last}"
        )


def _fmt_secs(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


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
    # a local worker of `run --workers N`: the study's FAIL count when the run started, so that
    # budget.max_failures counts the workers' failures together (None: this process's own)
    failures_before: int | None = None
    progress_every: float = 2.0  # seconds between progress reports
    last_report: float = -1e9
    seen: set[int] = field(default_factory=set)
    front: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    hv: float | None = None
    objective: Objective | None = None  # (None: the one the spec names)
    # trials a worker evaluates together and how (driver.fuse; None: one at a time)
    evaluate_group: GroupEvaluator | None = None
    fuse: int = 1

    def __post_init__(self) -> None:
        if self.objective is None:
            self.objective = objective_for(self.spec.objective)

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.spec.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.spec.objectives]


def study_hypervolume(ctx: StudyContext) -> tuple[float | None, list[float] | None]:
    """Hypervolume of the feasible complete trials, kept incrementally: only trials new since
    the last call are merged into the cached front, and HV is recomputed only when it moves."""
    from optuna.trial import TrialState

    from moo_search.pareto import hypervolume, pareto_mask

    ref = stored_reference_point(ctx.study, ctx.spec, ctx.directions)
    if ref is None:
        return None, ref
    new = []
    for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number in ctx.seen:
            continue
        ctx.seen.add(t.number)
        if is_feasible(t):
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
