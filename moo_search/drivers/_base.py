"""What every driver shares: the run loop that keeps the budget, the timeout, the failure
limit and progress; each driver supplies how to start one trial (pymoo's public-method ->
private-hook pattern: ``run()`` does the bookkeeping, ``_step()`` the algorithm's part)."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from moo_search.drivers._context import StudyContext, report_progress
from moo_search.drivers._group import asked, group_size, run_group
from moo_search.drivers._runner import TrialRunner
from moo_search.drivers._workers import fail_gone_workers, reap
from moo_search.errors import MooSearchError
from moo_search.interrupts import pause
from moo_search.registry import Registry
from moo_search.study import ATTR, count_states

__all__ = ["BaseDriver"]

logger = logging.getLogger("moo_search")

FINISH_POLL_SECONDS = 0.5


class BaseDriver(ABC):
    """Runs trials of ``ctx.study`` until ``ctx.n_trials`` trials are complete (variants not counted).

    Subclasses set ``name`` and ``algorithms`` (a registry of the algorithms they offer) and
    implement :meth:`_step`; they may override :meth:`_setup`.
    """

    name: ClassVar[str]
    algorithms: ClassVar[Registry[Any]]

    @staticmethod
    @abstractmethod
    def sampler(spec: Any) -> Any:
        """The Optuna sampler the study is opened with."""

    def run(self, ctx: StudyContext, *, max_failures: int) -> None:
        """Start trials until the budget is met, the timeout passes or ``max_failures``
        trials of this run have failed (then :class:`MooSearchError`)."""
        self.runner = TrialRunner(ctx)
        self._setup(ctx)
        while True:
            counts = count_states(ctx.study)
            if counts["COMPLETE"] >= ctx.n_trials:
                self._finish(ctx, counts)
                return
            if ctx.timeout is not None and time.monotonic() - ctx.started > ctx.timeout:
                logger.warning(
                    "timeout of %.0fs reached; stopping (resume with `moo-search run`)", ctx.timeout
                )
                return
            failed = (
                ctx.session_failures
                if ctx.failures_before is None  # this process alone
                else counts["FAIL"] - ctx.failures_before  # the run's workers together
            )
            if failed >= max_failures:
                raise MooSearchError(
                    f"{failed} trials failed in this run (budget.max_failures = "
                    f"{max_failures}); stopping. The failure reasons are in the study "
                    "(moo-search report)."
                )
            self._step(ctx, counts)

    def _setup(self, ctx: StudyContext) -> None:  # noqa: B027 - an optional hook
        """Called once before the loop."""

    def _finish(self, ctx: StudyContext, counts: dict[str, int]) -> None:
        """Called once when the budget is met; leaves nothing behind. A trial still RUNNING
        then belongs to a worker that died (live ones start trials only within the budget):
        failed at once when that worker was on this host, else once its heartbeat is stale.
        A trial still WAITING (a retry of one of those) is not needed any more."""
        from optuna.storages._heartbeat import is_heartbeat_enabled
        from optuna.trial import TrialState

        storage, driver = ctx.study._storage, ctx.spec.driver
        fail_gone_workers(ctx.study, driver.grace_period)
        if not is_heartbeat_enabled(storage):
            return
        end = time.monotonic() + driver.grace_period + 2 * driver.heartbeat_interval
        while count_states(ctx.study)["RUNNING"] and time.monotonic() < end:
            reap(ctx.study, driver.grace_period)
            pause(FINISH_POLL_SECONDS)
        for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if not t.user_attrs.get(ATTR.ANCHOR):
                storage.set_trial_user_attr(
                    t._trial_id, ATTR.FAIL, "not run: the budget was met before it started"
                )
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)

    @abstractmethod
    def _step(self, ctx: StudyContext, counts: dict[str, int]) -> None:
        """Advance by at most one trial (or wait while other workers finish theirs)."""

    def _run_one(self, ctx: StudyContext) -> None:
        """Run one trial through Optuna (the next WAITING one, else a sampled one)."""
        from moo_search.interrupts import interrupts_deferred

        # held but in the evaluation itself (the runner's interruptible block): never inside
        # a storage call, nor between taking a trial and recording who runs it
        with interrupts_deferred():
            counts = count_states(ctx.study)
            k = group_size(ctx, ctx.n_trials - counts["COMPLETE"] - counts["RUNNING"])
            if k > 1:
                run_group(ctx, self.runner, asked(ctx.study, k))
            else:
                self._optimize_one(ctx)

    def _optimize_one(self, ctx: StudyContext) -> None:
        ctx.study.optimize(
            self.runner,
            n_trials=1,
            catch=(Exception,),
            callbacks=[lambda study, frozen: report_progress(ctx, frozen)],
            gc_after_trial=False,
            show_progress_bar=False,
        )
