"""The Optuna driver: NSGA-II (default), NSGA-III, TPE, random and GP samplers."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from typing import Any

from moo_search.drivers._study import (
    StudyContext,
    TrialRunner,
    constraints_func,
    count_states,
    report_progress,
)
from moo_search.errors import MooSearchError, SpecError
from moo_search.spec import DriverConfig

__all__ = ["OptunaDriver", "make_sampler"]

logger = logging.getLogger("moo_search")

POLL_SECONDS = 2.0


def _crossover(name: str) -> Any:
    from optuna.samplers import nsgaii

    table = {
        "uniform": nsgaii.UniformCrossover,
        "sbx": nsgaii.SBXCrossover,
        "blxalpha": nsgaii.BLXAlphaCrossover,
        "spx": nsgaii.SPXCrossover,
        "undx": nsgaii.UNDXCrossover,
        "vsbx": nsgaii.VSBXCrossover,
    }
    return table[name]()


def make_sampler(cfg: DriverConfig, *, constrained: bool) -> Any:
    """The configured sampler; constraints go through ``Trial.set_constraint`` on Optuna >= 5
    and through ``constraints_func`` on 4.x."""
    import optuna

    legacy = constrained and not hasattr(optuna.trial.Trial, "set_constraint")
    cons: dict[str, Any] = {"constraints_func": constraints_func} if legacy else {}
    if cfg.algorithm in ("nsga2", "nsga3"):
        cls = (
            optuna.samplers.NSGAIISampler
            if cfg.algorithm == "nsga2"
            else optuna.samplers.NSGAIIISampler
        )
        crossover = _crossover(cfg.crossover)
        if cfg.population < crossover.n_parents:
            raise SpecError(
                f"crossover {cfg.crossover!r} needs a population of at least {crossover.n_parents}, "
                f"got {cfg.population}",
                field="driver.population",
            )
        with warnings.catch_warnings():  # NSGAIIISampler is marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(
                population_size=cfg.population,
                crossover=crossover,
                crossover_prob=cfg.crossover_prob,
                mutation_prob=cfg.mutation_prob,
                seed=cfg.seed,
                **cons,
            )
    if cfg.algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=cfg.seed, multivariate=True, **cons)
    if cfg.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    if not hasattr(optuna.samplers, "GPSampler"):
        raise SpecError(
            f"the installed Optuna {optuna.__version__} has no GPSampler", field="driver.algorithm"
        )
    try:
        import torch  # noqa: F401  # GPSampler needs torch (a dependency) and scipy
    except ImportError as e:  # pragma: no cover
        raise SpecError("driver.algorithm gp needs torch", field="driver.algorithm") from e
    return optuna.samplers.GPSampler(seed=cfg.seed, **cons)


class OptunaDriver:
    """Ask-and-tell through ``study.optimize(n_trials=1)`` in a loop that keeps the budget exact
    across workers: a worker only starts a trial while complete + running < budget, and waits
    (failing stale trials by heartbeat) while the last trials run elsewhere."""

    name = "optuna"

    def run(self, ctx: StudyContext, *, max_failures: int) -> None:
        runner = TrialRunner(ctx)
        catch = (Exception,)
        while True:
            counts = count_states(ctx.study)
            if counts["COMPLETE"] >= ctx.n_trials:
                return
            if ctx.timeout is not None and time.monotonic() - ctx.started > ctx.timeout:
                logger.warning(
                    "timeout of %.0fs reached; stopping (resume with `moo-search run`)", ctx.timeout
                )
                return
            if ctx.session_failures >= max_failures:
                raise MooSearchError(
                    f"{ctx.session_failures} trials failed in this run (budget.max_failures = {max_failures}); "
                    "stopping. The failure reasons are in the study (moo-search report)."
                )
            if counts["COMPLETE"] + counts["RUNNING"] >= ctx.n_trials and counts["WAITING"] == 0:
                _fail_stale(ctx.study)
                time.sleep(POLL_SECONDS)
                continue

            def after(study: Any, frozen: Any) -> None:
                report_progress(ctx, frozen)

            ctx.study.optimize(
                runner,
                n_trials=1,
                catch=catch,
                callbacks=[after],
                gc_after_trial=False,
                show_progress_bar=False,
            )


def _fail_stale(study: Any) -> None:
    from optuna.storages import fail_stale_trials

    with contextlib.suppress(ValueError, NotImplementedError):  # storages without heartbeats
        fail_stale_trials(study)
