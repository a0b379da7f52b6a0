"""The Optuna driver: NSGA-II (default), NSGA-III, TPE, random and GP samplers."""

from __future__ import annotations

import warnings
from typing import Any

from moo_search.drivers._base import BaseDriver
from moo_search.drivers._context import StudyContext
from moo_search.drivers._runner import constraints_func
from moo_search.drivers._workers import reap
from moo_search.errors import SpecError
from moo_search.interrupts import pause
from moo_search.registry import DRIVERS, Registry
from moo_search.spec import DriverConfig

__all__ = ["OPTUNA_ALGORITHMS", "OptunaDriver", "make_sampler"]

POLL_SECONDS = 2.0

OPTUNA_ALGORITHMS: Registry[Any] = Registry("Optuna algorithm", field="driver.algorithm")
"""name -> ``factory(cfg: DriverConfig, constraint_kwargs: dict) -> optuna sampler``."""


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


def _nsga(cls_name: str) -> Any:
    def factory(cfg: DriverConfig, cons: dict[str, Any]) -> Any:
        import optuna

        crossover = _crossover(cfg.crossover)
        if cfg.population < crossover.n_parents:
            raise SpecError(
                f"crossover {cfg.crossover!r} needs a population of at least {crossover.n_parents}, "
                f"got {cfg.population}",
                field="driver.population",
            )
        with warnings.catch_warnings():  # NSGAIIISampler is marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return getattr(optuna.samplers, cls_name)(
                population_size=cfg.population,
                crossover=crossover,
                crossover_prob=cfg.crossover_prob,
                mutation_prob=cfg.mutation_prob,
                seed=cfg.seed,
                **cons,
            )

    return factory


def _tpe(cfg: DriverConfig, cons: dict[str, Any]) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=cfg.seed, multivariate=True, **cons)


def _random(cfg: DriverConfig, cons: dict[str, Any]) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=cfg.seed)


def _gp(cfg: DriverConfig, cons: dict[str, Any]) -> Any:
    import optuna

    if not hasattr(optuna.samplers, "GPSampler"):
        raise SpecError(
            f"the installed Optuna {optuna.__version__} has no GPSampler", field="driver.algorithm"
        )
    try:
        import torch  # noqa: F401  # GPSampler needs torch and scipy
    except ImportError:
        raise SpecError(
            "gp needs torch, not installed here (the engine alone does not bring it): "
            "pip install torch, or pip install 'moo-search[recommender]'",
            field="driver.algorithm",
        ) from None
    return optuna.samplers.GPSampler(seed=cfg.seed, **cons)


OPTUNA_ALGORITHMS.register("nsga2", _nsga("NSGAIISampler"))
OPTUNA_ALGORITHMS.register("nsga3", _nsga("NSGAIIISampler"))
OPTUNA_ALGORITHMS.register("tpe", _tpe)
OPTUNA_ALGORITHMS.register("random", _random)
OPTUNA_ALGORITHMS.register("gp", _gp)


def make_sampler(cfg: DriverConfig, *, constrained: bool) -> Any:
    """The configured sampler; constraints go through ``Trial.set_constraint`` on Optuna >= 5
    and through ``constraints_func`` on 4.x."""
    import optuna

    legacy = constrained and not hasattr(optuna.trial.Trial, "set_constraint")
    cons: dict[str, Any] = {"constraints_func": constraints_func} if legacy else {}
    return OPTUNA_ALGORITHMS.get(cfg.algorithm)(cfg, cons)


@DRIVERS.register("optuna")
class OptunaDriver(BaseDriver):
    """Ask-and-tell through ``study.optimize(n_trials=1)`` in a loop that keeps the budget exact
    across workers: a worker only starts a trial while complete + running < budget, and waits
    (failing the trials of dead workers) while the last trials run elsewhere."""

    name = "optuna"
    algorithms = OPTUNA_ALGORITHMS

    @staticmethod
    def sampler(spec: Any) -> Any:
        return make_sampler(spec.driver, constrained=bool(spec.constraints))

    def _step(self, ctx: StudyContext, counts: dict[str, int]) -> None:
        if counts["COMPLETE"] + counts["RUNNING"] >= ctx.n_trials and counts["WAITING"] == 0:
            reap(ctx.study, ctx.spec.driver.grace_period)
            pause(POLL_SECONDS)
            return
        # dead workers' trials, with the reason (optimize() would fail the stale ones next,
        # without one)
        reap(ctx.study, ctx.spec.driver.grace_period)
        self._run_one(ctx)
