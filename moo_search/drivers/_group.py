"""Trials a worker runs together (``driver.fuse``): it takes up to K trials at once (Optuna's
ask K times, or K waiting slots of a pymoo generation), holds each RUNNING with its own
heartbeat, evaluates them in one call of the objective's group evaluator
(:meth:`~moo_search.objective.Objective.fused_evaluator`), then records and tells each as
one trial alone is told. A trial that fails or is pruned is that trial's outcome only."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from moo_search.drivers._context import StudyContext, report_progress

__all__ = ["asked", "group_size", "run_group"]

logger = logging.getLogger("moo_search")


def group_size(ctx: StudyContext, room: int) -> int:
    """How many trials to take now: ``driver.fuse`` (as the objective resolved it), at most
    the budget's ``room``; 1 where the objective evaluates one at a time."""
    if ctx.evaluate_group is None:
        return 1
    return max(1, min(ctx.fuse, room))


def asked(study: Any, k: int) -> list[int]:
    """``k`` trials taken from Optuna's ask (a waiting one first, else sampled), RUNNING."""
    import warnings

    with warnings.catch_warnings():  # the heartbeat is started per trial, as optimize does
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return [study.ask()._trial_id for _ in range(k)]


def run_group(ctx: StudyContext, runner: Any, trial_ids: list[int]) -> None:
    """Run the trials this worker holds RUNNING (``trial_ids``) together: heartbeats, one
    group evaluation, then tell and report each."""
    import optuna
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import TrialState

    study = ctx.study
    trials = [optuna.Trial(study, tid) for tid in trial_ids]
    interrupted: BaseException | None = None
    with contextlib.ExitStack() as stack:
        for t in trials:
            stack.enter_context(get_heartbeat_thread(t._trial_id, study._storage))  # type: ignore[arg-type]
        try:
            outcomes = runner.run_group(trials)
        except KeyboardInterrupt as e:
            outcomes, interrupted = [(TrialState.FAIL, None)] * len(trials), e
    for t, (state, values) in zip(trials, outcomes, strict=True):
        try:
            study.tell(t, values if state == TrialState.COMPLETE else None, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError) as e:
            logger.warning("trial %d was closed by another worker while it ran (%s)", t.number, e)
        report_progress(ctx, study._storage.get_trial(t._trial_id))
    if interrupted is not None:
        raise interrupted
