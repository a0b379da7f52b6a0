"""The pymoo driver: NSGA2 / NSGA3 through ask/tell, every evaluation an Optuna trial, any
number of workers.

Mixed spaces are encoded as real vectors (the usual pymoo treatment): floats as they are,
log-floats in log space, ints on [low - 0.5, high + 0.5] rounded, categoricals on
[0, n) floored.

The algorithm's state is never stored: every worker (and every resumed run) rebuilds it from
the seed and the study. Generation g is asked; each of its individuals is a *slot*
(``"g:j"``), run as a plain Optuna trial tagged with it; once every slot of g has a result
in the storage (its COMPLETE values, or a failure), the generation is told, identically in
every worker, and g + 1 is asked. The slots of the generation in hand are enqueued under the
study's lock (:func:`moo_search.study.study_lock`), only those no trial holds yet and only
within the budget; workers pop them atomically, so each slot runs once, on whichever worker
is free. A slot whose worker died is failed (at once on this host, by heartbeat on another)
and run again; a slot whose evaluation failed counts as infeasible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_search.drivers._base import BaseDriver
from moo_search.drivers._context import StudyContext, report_progress
from moo_search.drivers._group import group_size, run_group
from moo_search.drivers._workers import INTERRUPTED, claim, reap
from moo_search.errors import MooSearchError, StorageError
from moo_search.interrupts import interrupts_deferred, pause
from moo_search.registry import DRIVERS, Registry
from moo_search.spec import Dimension, suggestion_order
from moo_search.study import ATTR, count_states, is_derived, study_lock, violations

__all__ = ["PYMOO_ALGORITHMS", "PymooDriver", "decode", "encode_bounds"]

_FAILED_F = 1e12
POLL_SECONDS = 1.0  # while the rest of a generation runs on other workers


def encode_bounds(space: dict[str, Dimension]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for d in space.values():
        if d.kind == "categorical":
            lo.append(0.0)
            hi.append(float(len(d.choices or [])) - 1e-9)
        elif d.kind == "int":
            a, b = float(d.low or 0), float(d.high or 0)
            lo.append(math.log(a) if d.log else a - 0.5 + 1e-9)
            hi.append(math.log(b) if d.log else b + 0.5 - 1e-9)
        else:
            a, b = float(d.low or 0), float(d.high or 0)
            lo.append(math.log(a) if d.log else a)
            hi.append(math.log(b) if d.log else b)
    return np.array(lo), np.array(hi)


def decode(x: np.ndarray, space: dict[str, Dimension]) -> dict[str, Any]:
    """The parameters of pymoo's vector ``x``; a dimension that does not act given the
    others (``Dimension.when``) is left out, as the trial's suggestions leave it."""
    out: dict[str, Any] = {}
    index = {path: i for i, path in enumerate(space)}  # x follows the spec's order
    for path in suggestion_order(space):
        v, d = x[index[path]], space[path]
        if not d.active(out):
            continue
        if d.kind == "categorical":
            choices = d.choices or []
            out[path] = choices[min(math.floor(v), len(choices) - 1)]
        elif d.kind == "int":
            val = math.exp(v) if d.log else v
            out[path] = int(min(max(round(val), int(d.low or 0)), int(d.high or 0)))
        else:
            val = math.exp(v) if d.log else float(v)
            out[path] = float(min(max(val, float(d.low or 0)), float(d.high or 0)))
    return out


def _nsga2(pop_size: int, n_obj: int) -> Any:
    from pymoo.algorithms.moo.nsga2 import NSGA2

    return NSGA2(pop_size=pop_size)


def _nsga3(pop_size: int, n_obj: int) -> Any:
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    partitions = 1
    while _n_dirs(n_obj, partitions + 1) <= pop_size:
        partitions += 1
    ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
    return NSGA3(ref_dirs=ref_dirs, pop_size=pop_size)


def _n_dirs(n_obj: int, partitions: int) -> int:
    return math.comb(n_obj + partitions - 1, partitions)


PYMOO_ALGORITHMS: Registry[Any] = Registry("pymoo algorithm", field="driver.algorithm")
"""name -> ``factory(pop_size, n_obj) -> pymoo algorithm``."""
PYMOO_ALGORITHMS.register("nsga2", _nsga2)
PYMOO_ALGORITHMS.register("nsga3", _nsga3)


@dataclass
class _Slot:
    """What the storage holds for one individual of the generation in hand."""

    state: str  # "done" (values), "failed" (evaluated, no values), "live" (queued/running), "open"
    values: list[float] | None = None
    violations: list[float] | None = None


def _evaluated_failure(t: Any) -> bool:
    """A trial whose evaluation ran and failed (or was stopped early by Pareto rank), as
    opposed to one stopped from outside (its worker died, Ctrl-C, never started)."""
    from optuna.trial import TrialState

    if t.state == TrialState.PRUNED:
        return ATTR.PRUNED_AT in t.user_attrs
    if t.state != TrialState.FAIL:
        return False
    reason = str(t.user_attrs.get(ATTR.FAIL) or "")
    return bool(reason) and not reason.startswith((INTERRUPTED, "orphaned", "not run"))


def _same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if isinstance(v, float) or isinstance(w, float):
            if not math.isclose(float(v), float(w), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif v != w:
            return False
    return True


@DRIVERS.register("pymoo")
class PymooDriver(BaseDriver):
    """pymoo's ask/tell, replayed from the storage by every worker (see the module doc)."""

    name = "pymoo"
    algorithms = PYMOO_ALGORITHMS

    @staticmethod
    def sampler(spec: Any) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=spec.driver.seed)  # params are always enqueued

    def _setup(self, ctx: StudyContext) -> None:
        from pymoo.core.problem import Problem

        if not ctx.space:
            raise MooSearchError("the pymoo driver needs a non-empty search_space")
        self.n_obj = len(ctx.spec.objectives)
        self.n_con = len(ctx.spec.constraints) + 1  # the last one marks failed evaluations
        xl, xu = encode_bounds(ctx.space)
        self.problem = Problem(
            n_var=len(ctx.space), n_obj=self.n_obj, n_ieq_constr=self.n_con, xl=xl, xu=xu
        )
        self.algorithm = PYMOO_ALGORITHMS.get(ctx.spec.driver.algorithm)(
            ctx.spec.driver.population, self.n_obj
        )
        self.algorithm.setup(self.problem, seed=ctx.spec.driver.seed, verbose=False)
        self.sign = np.array([-1.0 if d == "maximize" else 1.0 for d in ctx.directions])
        self.generation = 0
        self.pop: Any = None

    def _step(self, ctx: StudyContext, counts: dict[str, int]) -> None:
        if self.pop is None:
            self.pop = self.algorithm.ask()
            self.params = [decode(x, ctx.space) for x in self.pop.get("X")]
        trials = ctx.study.get_trials(deepcopy=False)  # one read of the storage per step
        slots = self._slots(ctx, trials)
        if all(s.state in ("done", "failed") for s in slots):
            self._tell(slots)
        elif not self._run_waiting(ctx, trials) and not self._publish(ctx):
            pause(POLL_SECONDS)  # the rest of this generation runs on other workers

    # -- the storage's view of the generation in hand ---------------------------------------

    def _key(self, j: int) -> str:
        return f"{self.generation}:{j}"

    def _slots(self, ctx: StudyContext, trials: list[Any]) -> list[_Slot]:
        from optuna.trial import TrialState

        by_key: dict[str, list[Any]] = {}
        for t in trials:
            key = t.user_attrs.get(ATTR.SLOT)
            if key is not None and not is_derived(t):
                by_key.setdefault(str(key), []).append(t)
        slots = []
        for j, params in enumerate(self.params):
            mine = sorted(by_key.get(self._key(j), []), key=lambda t: t.number)
            done = [t for t in mine if t.state == TrialState.COMPLETE]
            for t in done:
                if not _same_params(t.params, params):
                    raise StorageError(
                        f"study {ctx.study.study_name!r}: slot {self._key(j)} (trial "
                        f"{t.number}) was run with {t.params}, but this worker's "
                        f"{ctx.spec.driver.algorithm} proposes {params} for it: the workers "
                        "do not replay the same search. Run every worker with the same spec "
                        "(driver.population, driver.seed) and the same pymoo version"
                    )
            if done:
                slots.append(_Slot("done", list(done[0].values), violations(done[0])))
            elif any(_evaluated_failure(t) for t in mine):
                slots.append(_Slot("failed"))
            elif any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in mine):
                slots.append(_Slot("live"))
            else:
                slots.append(_Slot("open"))
        return slots

    def _generation_of(self, t: Any) -> int | None:
        """The generation of a slot trial (None for an anchor or any other trial)."""
        key = t.user_attrs.get(ATTR.SLOT)
        return None if key is None else int(str(key).split(":")[0])

    def _runnable(self, t: Any) -> bool:
        """A WAITING trial this worker may take: an anchor, or a slot of this generation."""
        return self._generation_of(t) in (None, self.generation)

    def _run_waiting(self, ctx: StudyContext, trials: list[Any]) -> bool:
        """Take the first runnable WAITING trial (atomically: one worker wins) and run it; up
        to ``driver.fuse`` of them, run together (:mod:`._group`)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        storage = ctx.study._storage
        want = group_size(ctx, len(trials))
        taken: list[int] = []
        for t in trials:
            if len(taken) >= want:
                break
            if t.state != TrialState.WAITING or not self._runnable(t):
                continue
            with interrupts_deferred():  # taken and claimed, or neither
                try:
                    if not storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                        continue  # another worker took it
                except UpdateFinishedTrialError:
                    continue
                claim(ctx.study, t._trial_id, t.number)  # at once: a death from here on is seen
            taken.append(t._trial_id)
        if len(taken) == 1:
            self._run_popped(ctx, taken[0])
        elif taken:
            with interrupts_deferred():
                run_group(ctx, self.runner, taken)
        return bool(taken)

    def _publish(self, ctx: StudyContext) -> bool:
        """Under the study's lock: close what dead workers left, then enqueue the slots of
        this generation that no trial holds, as many as the budget has room for."""
        from optuna.trial import TrialState

        with study_lock(ctx.study):
            reap(ctx.study, ctx.spec.driver.grace_period)  # (their retries are enqueued)
            storage = ctx.study._storage
            trials = ctx.study.get_trials(deepcopy=False)
            for t in trials:
                g = self._generation_of(t)
                if t.state == TrialState.WAITING and g is not None and g < self.generation:
                    storage.set_trial_user_attr(  # (left by an older version)
                        t._trial_id, ATTR.FAIL, "orphaned: a slot of a generation already told"
                    )
                    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            slots = self._slots(ctx, trials)  # (an orphan closed above is not of this one)
            if all(s.state in ("done", "failed") for s in slots):
                return True  # finished meanwhile: tell it next step
            counts = count_states(ctx.study)
            room = ctx.n_trials - counts["COMPLETE"] - counts["RUNNING"] - counts["WAITING"]
            todo = [j for j, s in enumerate(slots) if s.state == "open"][: max(room, 0)]
            for j in todo:
                ctx.study.enqueue_trial(
                    self.params[j],
                    skip_if_exists=False,
                    user_attrs={ATTR.GENERATION: self.generation, ATTR.SLOT: self._key(j)},
                )
        return bool(todo)

    # -- running one popped trial, telling a generation ---------------------------------------

    def _run_popped(self, ctx: StudyContext, trial_id: int) -> None:
        """Run the objective on a trial this worker has set RUNNING (what ``study.optimize``
        does for one trial, without ever sampling a new one): heartbeat, tell, progress."""
        import logging

        import optuna
        from optuna.storages._heartbeat import get_heartbeat_thread
        from optuna.trial import TrialState

        study = ctx.study
        trial = optuna.Trial(study, trial_id)
        values: list[float] | None = None
        state = TrialState.COMPLETE
        interrupted: BaseException | None = None
        with get_heartbeat_thread(trial_id, study._storage):
            try:
                values = self.runner(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except KeyboardInterrupt as e:
                state, interrupted = TrialState.FAIL, e
            except Exception:  # the runner recorded the reason; the study goes on
                state = TrialState.FAIL
        try:
            study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError) as e:
            logging.getLogger("moo_search").warning(
                "trial %d was closed by another worker while it ran (%s)", trial.number, e
            )
        report_progress(ctx, study._storage.get_trial(trial_id))
        if interrupted is not None:
            raise interrupted

    def _tell(self, slots: list[_Slot]) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        F = np.full((len(slots), self.n_obj), _FAILED_F)
        G = np.zeros((len(slots), self.n_con))
        for j, s in enumerate(slots):
            if s.values is not None:
                F[j] = np.asarray(s.values) * self.sign
                G[j, :-1] = s.violations or []
            else:
                G[j, -1] = 1.0
        Evaluator().eval(StaticProblem(self.problem, F=F, G=G), self.pop)
        self.algorithm.tell(infills=self.pop)
        self.generation += 1
        self.pop = None
