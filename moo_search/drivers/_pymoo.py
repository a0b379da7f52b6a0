"""The pymoo driver: NSGA2 / NSGA3 through ask/tell, every evaluation an Optuna trial.

Mixed spaces are encoded as real vectors (the usual pymoo treatment): floats as they are,
log-floats in log space, ints on [low - 0.5, high + 0.5] rounded, categoricals on
[0, n) floored. Each individual is enqueued with its decoded params and run as a plain
Optuna trial, tagged with its generation and slot, so resume replays finished slots from the
storage instead of evaluating them again.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from moo_search.drivers._base import BaseDriver
from moo_search.drivers._context import StudyContext
from moo_search.errors import MooSearchError, StorageError
from moo_search.registry import DRIVERS, Registry
from moo_search.spec import Dimension
from moo_search.study import ATTR, STUDY_ATTR, violations

__all__ = ["PYMOO_ALGORITHMS", "PymooDriver", "decode", "encode_bounds"]

_FAILED_F = 1e12
ATTR_OWNER = STUDY_ATTR.DRIVER_OWNER


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
    out: dict[str, Any] = {}
    for v, (path, d) in zip(x, space.items()):
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


def _owner() -> dict[str, Any]:
    import os
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid(), "beat": time.time()}


def _alive(owner: dict[str, Any], grace: float) -> bool:
    import os
    import socket

    if owner.get("host") == socket.gethostname():
        if owner.get("pid") == os.getpid():
            return False  # this process (a second run() call)
        try:
            os.kill(int(owner["pid"]), 0)
        except (OSError, ValueError, KeyError):
            return False
        return True
    return time.time() - float(owner.get("beat", 0)) < grace  # another host: by heartbeat


def _claim(study: Any, *, grace: float) -> None:
    """A pymoo study has one driving process (its ask/tell state lives in that process):
    refuse to start while another live process drives it."""
    owner = study.user_attrs.get(ATTR_OWNER)
    if owner and _alive(owner, grace):
        raise StorageError(
            f"study {study.study_name!r} is being driven by another process "
            f"({owner.get('host')}, pid {owner.get('pid')}); the pymoo driver runs in one "
            "process. Wait for it to finish (then run again to resume), or use "
            "driver.backend: optuna for several workers"
        )
    study.set_user_attr(ATTR_OWNER, _owner())


def _beat(study: Any) -> None:
    study.set_user_attr(ATTR_OWNER, _owner())


def _close_orphans(study: Any) -> None:
    """Trials a stopped run left behind: RUNNING ones (its process is gone: this one owns the
    study now) and WAITING generation slots it enqueued but never started. Each is marked
    FAIL with the reason, so the run resumes from the finished slots, never from theirs."""
    from optuna.trial import TrialState

    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if t.state == TrialState.WAITING and ATTR.SLOT not in t.user_attrs:
            continue  # an anchor (base config, enqueue:) still to run
        why = (
            "interrupted: the run driving it stopped (found RUNNING when the study resumed)"
            if t.state == TrialState.RUNNING
            else "orphaned: enqueued by a run that stopped before evaluating it"
        )
        storage.set_trial_user_attr(t._trial_id, ATTR.FAIL, why)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


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


@DRIVERS.register("pymoo")
class PymooDriver(BaseDriver):
    """pymoo's ask/tell, one individual per step: a generation is asked when the last one is
    told, each individual is enqueued with its decoded params and run as an Optuna trial
    (tagged with generation and slot), and a slot finished before (resume) is replayed from
    the storage instead of evaluated again. Anchors (WAITING trials) run first."""

    name = "pymoo"
    algorithms = PYMOO_ALGORITHMS

    @staticmethod
    def sampler(spec: Any) -> Any:
        import optuna

        return optuna.samplers.RandomSampler(seed=spec.driver.seed)  # params are always enqueued

    def _setup(self, ctx: StudyContext) -> None:
        from optuna.trial import TrialState
        from pymoo.core.problem import Problem

        if not ctx.space:
            raise MooSearchError("the pymoo driver needs a non-empty search_space")
        _claim(ctx.study, grace=float(ctx.spec.driver.grace_period))
        _close_orphans(ctx.study)
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
        self.done: dict[str, Any] = {}
        for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            slot = t.user_attrs.get(ATTR.SLOT)
            if slot is not None:
                self.done[slot] = t
        self.generation = 0
        self.pop: Any = None

    def _step(self, ctx: StudyContext, counts: dict[str, int]) -> None:
        _beat(ctx.study)
        if counts["WAITING"]:
            self._run_one(ctx)  # anchors (the base config) run first
            return
        if self.pop is None:
            self.pop = self.algorithm.ask()
            self.X = self.pop.get("X")
            self.F = np.empty((len(self.X), self.n_obj))
            self.G = np.zeros((len(self.X), self.n_con))
            self.j = 0
        j, slot = self.j, f"{self.generation}:{self.j}"
        values: list[float] | None
        if slot in self.done:
            values, viol = list(self.done[slot].values), violations(self.done[slot])
        else:
            ctx.study.enqueue_trial(
                decode(self.X[j], ctx.space),
                skip_if_exists=False,
                user_attrs={ATTR.GENERATION: self.generation, ATTR.SLOT: slot},
            )
            self._run_one(ctx)
            values, viol = self.runner.last_values, self.runner.last_violations
        if values is not None:
            self.F[j] = np.asarray(values) * self.sign
            self.G[j, :-1] = viol
        else:
            self.F[j], self.G[j, -1] = _FAILED_F, 1.0
        self.j += 1
        if self.j == len(self.X):
            self._tell()

    def _tell(self) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        Evaluator().eval(StaticProblem(self.problem, F=self.F, G=self.G), self.pop)
        self.algorithm.tell(infills=self.pop)
        self.generation += 1
        self.pop = None
