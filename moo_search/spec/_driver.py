"""How a study is driven and budgeted: the driver (backend, algorithm, early stopping) and
the budget."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moo_search.registry import DRIVERS
from moo_search.spec._errors import Located, Strict, closest

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "BudgetConfig",
    "DriverConfig",
    "EarlyStoppingConfig",
]

HEARTBEAT_INTERVAL = 10
"""Seconds between a running trial's heartbeats (RDB storages)."""
GRACE_PERIOD = 30
"""Seconds a RUNNING trial may be silent before it is failed (and retried)."""


class EarlyStoppingConfig(Strict):
    """Multi-objective successive halving: at each rung, trials whose validation objective
    vector (on a fixed sample of users) ranks in the worst (1 - 1/eta) share stop, PRUNED."""

    enabled: bool = Field(False, description="Stop weak trials at rungs (successive halving).")
    rungs: list[float] = Field(
        default_factory=lambda: [0.34],
        description="Checkpoints as fractions of a trial's length, its objective's steps "
        "(the recommender's: train.max_steps), each in (0, 1).",
    )
    eta: float = Field(3.0, gt=1.0, description="Keep the best 1/eta at each rung.")
    min_trials: int = Field(
        4, ge=2, description="Trials that must have reached a rung before it stops any."
    )
    sample_users: int = Field(
        300, ge=10, description="Validation users a rung is evaluated on (the same for all)."
    )

    @model_validator(mode="before")
    @classmethod
    def _bool(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v  # early_stopping: true

    @field_validator("rungs")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0.0 < r < 1.0 for r in v):
            raise ValueError(f"rungs are fractions of a trial's length in (0, 1), got {v}")
        return sorted(set(v))


class DriverConfig(Strict):
    backend: str = Field("optuna", description="A registered driver (optuna, pymoo).")
    algorithm: str = Field(
        "nsga2",
        description="One of the backend's algorithms (optuna: nsga2, nsga3, tpe, random, gp).",
    )
    population: int = Field(
        8, ge=2, description="Trials per generation (NSGA-II/III population size)."
    )
    seed: int = Field(0, description="Seed of the sampler's proposals.")
    crossover: Literal["uniform", "sbx", "blxalpha", "spx", "undx", "vsbx"] = Field(
        "uniform", description="The genetic algorithms' crossover operator."
    )
    crossover_prob: float = Field(
        0.9, ge=0.0, le=1.0, description="Probability that two parents cross over."
    )
    mutation_prob: float | None = Field(
        None, ge=0.0, le=1.0, description="Per-parameter mutation probability (None: 1 / dims)."
    )
    reference_point: list[float] | None = Field(
        None, description="Hypervolume reference point in objective units (default: derived)."
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    fuse: int | Literal["auto"] = Field(
        1,
        description=(
            "Trials a worker trains together over one copy of the frozen base, one shared "
            "pass per step (each keeps its own optimizer, losses, rungs and artifacts); 1: "
            "one at a time; auto: the objective picks from the device (the recommender "
            "measures the shared pass at 1, 2, 4 and 8 batches and keeps the fastest per "
            "example). Objectives that train nothing ignore it."
        ),
    )
    heartbeat_interval: int = Field(
        HEARTBEAT_INTERVAL, ge=1, description="Seconds between a running trial's heartbeats."
    )
    grace_period: int = Field(
        GRACE_PERIOD, ge=2, description="A trial silent this long is failed and retried."
    )

    @field_validator("fuse", mode="before")
    @classmethod
    def _fuse(cls, v: Any) -> Any:
        ok = v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
        if not ok:
            raise ValueError(f"a number of trials >= 1, or auto; got {v!r}")
        return v

    @model_validator(mode="after")
    def _combo(self) -> DriverConfig:
        if self.backend not in DRIVERS:
            raise Located(("backend",), DRIVERS.unknown_message(self.backend))
        algorithms = DRIVERS.get(self.backend).algorithms
        if self.algorithm not in algorithms:
            names = algorithms.names()
            raise Located(
                ("algorithm",),
                f"{self.backend} backend supports {', '.join(names)}, got "
                f"{self.algorithm!r}{closest(self.algorithm, names)}",
            )
        return self


class BudgetConfig(Strict):
    n_trials: int = Field(12, ge=1, description="Complete trials the study runs to.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds; stop launching new trials after."
    )
    max_failures: int = Field(10, ge=1, description="Stop a run after this many failed trials.")
