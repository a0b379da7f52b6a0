"""The pymoo driver: NSGA2 / NSGA3 through ask/tell, every evaluation an Optuna trial.

Mixed spaces are encoded as real vectors (the usual pymoo treatment): floats as they are,
log-floats in log space, ints on [low - 0.5, high + 0.5] rounded, categoricals on
[0, n) floored. Each individual is enqueued with its decoded params and run as a plain
Optuna trial, tagged with its generation and slot, so resume replays finished slots from the
storage instead of evaluating them again.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from moo_search.drivers._study import ATTR, StudyContext, TrialRunner, count_states, report_progress
from moo_search.errors import MooSearchError
from moo_search.spec import Dimension

__all__ = ["PymooDriver", "decode", "encode_bounds"]

logger = logging.getLogger("moo_search")

_FAILED_F = 1e12


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


class PymooDriver:
    name = "pymoo"

    def _algorithm(self, ctx: StudyContext, n_obj: int) -> Any:
        cfg = ctx.spec.driver
        if cfg.algorithm == "nsga2":
            from pymoo.algorithms.moo.nsga2 import NSGA2

            return NSGA2(pop_size=cfg.population)
        from pymoo.algorithms.moo.nsga3 import NSGA3
        from pymoo.util.ref_dirs import get_reference_directions

        partitions = 1
        while _n_dirs(n_obj, partitions + 1) <= cfg.population:
            partitions += 1
        ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
        return NSGA3(ref_dirs=ref_dirs, pop_size=cfg.population)

    def run(self, ctx: StudyContext, *, max_failures: int) -> None:
        from optuna.trial import TrialState
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.problem import Problem
        from pymoo.problems.static import StaticProblem

        space = ctx.space
        if not space:
            raise MooSearchError("the pymoo driver needs a non-empty search_space")
        n_obj = len(ctx.spec.objectives)
        n_con = len(ctx.spec.constraints) + 1  # the last one marks failed evaluations
        xl, xu = encode_bounds(space)
        problem = Problem(n_var=len(space), n_obj=n_obj, n_ieq_constr=n_con, xl=xl, xu=xu)
        algorithm = self._algorithm(ctx, n_obj)
        algorithm.setup(problem, seed=ctx.spec.driver.seed, verbose=False)
        sign = np.array([-1.0 if d == "maximize" else 1.0 for d in ctx.directions])

        done: dict[str, Any] = {}
        for t in ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            slot = t.user_attrs.get(ATTR.SLOT)
            if slot is not None:
                done[slot] = t
        runner = TrialRunner(ctx)
        while ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            self._optimize_one(ctx, runner)  # anchors (the base config) run first
        complete = count_states(ctx.study)["COMPLETE"]
        generation = 0
        while complete < ctx.n_trials:
            pop = algorithm.ask()
            X = pop.get("X")
            F = np.empty((len(X), n_obj))
            G = np.zeros((len(X), n_con))
            for j, x in enumerate(X):
                if complete >= ctx.n_trials:
                    return  # budget reached mid-generation: exact budget, no surplus trials
                slot = f"{generation}:{j}"
                values: list[float] | None
                if slot in done:
                    values, violations = (
                        list(done[slot].values),
                        done[slot].user_attrs.get(ATTR.CONSTRAINTS, []),
                    )
                else:
                    ctx.study.enqueue_trial(
                        decode(x, space),
                        skip_if_exists=False,
                        user_attrs={ATTR.GENERATION: generation, ATTR.SLOT: slot},
                    )
                    self._optimize_one(ctx, runner)
                    values, violations = runner.last_values, runner.last_violations
                if values is not None:
                    complete += int(slot not in done)
                    F[j] = np.asarray(values) * sign
                    G[j, :-1] = violations
                else:
                    F[j], G[j, -1] = _FAILED_F, 1.0
                    if ctx.session_failures >= max_failures:
                        raise MooSearchError(
                            f"{ctx.session_failures} trials failed in this run "
                            f"(budget.max_failures = {max_failures}); stopping."
                        )
            Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)
            algorithm.tell(infills=pop)
            generation += 1

    def _optimize_one(self, ctx: StudyContext, runner: TrialRunner) -> None:
        def after(study: Any, frozen: Any) -> None:
            report_progress(ctx, frozen)

        ctx.study.optimize(
            runner, n_trials=1, catch=(Exception,), callbacks=[after], gc_after_trial=False
        )


def _n_dirs(n_obj: int, partitions: int) -> int:
    return math.comb(n_obj + partitions - 1, partitions)
