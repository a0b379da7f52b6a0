"""The record a study keeps in its Optuna storage: attribute keys and typed readers.

Drivers write these keys (through :mod:`moo_search.study`), report and export read them. A
study written by an earlier version uses the same keys, so it opens unchanged.
"""

from __future__ import annotations

from typing import Any

from moo_search.stats import finite_or_none

__all__ = [
    "ATTR",
    "STUDY_ATTR",
    "finite_metrics",
    "is_derived",
    "is_feasible",
    "pack_counts",
    "record_key",
    "trial_metrics",
    "unpack_counts",
    "violations",
]


class ATTR:
    """Trial user-attribute keys."""

    METRICS = "moo:metrics"  # {"val": {...}, "test": {...}}
    COST = "moo:cost"
    CONFIG = "moo:config"  # the resolved trial config (plain data)
    PARAMS = "moo:params"  # the searched dotted-path params
    ARTIFACTS = "moo:artifact_dir"
    ARTIFACT_SHA256 = "moo:artifact_sha256"  # {relative path: SHA-256} of every artifact file
    FAIL = "moo:fail_reason"
    CONSTRAINTS = "moo:constraints"  # violations, <= 0 is feasible
    GENERATION = "moo:generation"
    ANCHOR = "moo:anchor"  # "base" or a named enqueued config
    DERIVED_FROM = "moo:derived_from"  # an inference-only variant of this trial (number)
    KNOBS = "moo:knobs"  # a variant's inference-only settings {path: value}
    SLOT = "moo:pymoo_slot"
    RUNGS = "moo:rungs"  # {step: validation objective vector on the rung's user sample}
    CURVE = "moo:curve"  # [{"step", "values"}]: the objective vector at each checkpoint
    PRUNED_AT = "moo:pruned_at"  # the rung (step) a stopped trial stopped at
    WORKER = "moo:worker"  # {"host", "node", "pid", "trial"}: the process that started it


class STUDY_ATTR:
    """Study user-attribute keys."""

    SPEC = "moo:spec"
    OBJECTIVES = "moo:objectives"
    REFERENCE = "moo:reference_point"
    BASELINES = "moo:baselines"
    REFERENCE_FRONT = "moo:reference_front"  # baselines x inference-knob grid, non-dominated
    ENQUEUED = "moo:enqueued"
    VERSION = "moo:version"
    STUDY_ID = "moo:study_id"  # a random id given at creation; names the study's home
    DRIVER_OWNER = "moo:driver_owner"  # written by versions whose pymoo driver ran in one process
    FINGERPRINT = "moo:fingerprint"  # what makes two runs the same study (see study_fingerprint)
    BUDGET = "moo:n_trials"  # the budget of the latest `run` (what a joining worker works to)


Metrics = dict[str, dict[str, float]]


def record_key(name: str) -> str:
    """The trial attribute an objective's record ``name`` is stored under
    (:attr:`moo_search.objective.Evaluation.records`): ``moo:<name>``."""
    return f"moo:{name}"


def trial_metrics(t: Any) -> dict[str, dict[str, float | None]]:
    """``{"val": {...}, "test": {...}}`` as the trial recorded them (empty if none)."""
    return t.user_attrs.get(ATTR.METRICS) or {}


def violations(t: Any) -> list[float]:
    """The trial's constraint violations (<= 0 is satisfied)."""
    return [float(v) for v in t.user_attrs.get(ATTR.CONSTRAINTS) or []]


def is_feasible(t: Any) -> bool:
    return not any(v > 0 for v in violations(t))


def is_derived(t: Any) -> bool:
    """An inference-only variant of another trial (not counted by the budget)."""
    return ATTR.DERIVED_FROM in t.user_attrs


def finite_metrics(metrics: Metrics) -> dict[str, dict[str, float | None]]:
    """JSON-safe: NaN/inf become None (the report shows them as missing)."""
    return {p: {k: finite_or_none(v) for k, v in m.items()} for p, m in metrics.items()}


def pack_counts(counts: Any) -> str:
    """Small non-negative integers (hits per user, at most 255) as one compact string:
    base64 of their bytes, so a per-user vector costs ~1.3 characters a user in storage."""
    import base64

    import numpy as np

    a = np.asarray(counts)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"pack_counts holds 0..255, got {a.min()}..{a.max()}")
    return base64.b64encode(a.astype(np.uint8).tobytes()).decode("ascii")


def unpack_counts(packed: str) -> Any:
    """The integer array :func:`pack_counts` packed."""
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(packed), dtype=np.uint8).astype(np.int64)
