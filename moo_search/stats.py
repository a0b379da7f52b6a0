"""Numbers the engine records and reports: finite or missing (JSON has no NaN or inf), and
whether a difference between two models is more than noise (a paired bootstrap)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "jsonable", "paired_bootstrap", "verdict"]


def finite_or_none(v: Any) -> float | None:
    """``v`` as a float, or None when it is not a finite number (JSON has no NaN/inf)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def verdict(lo: float, hi: float) -> str:
    """What a difference's interval says: above 0, below 0, or either (noise)."""
    return "better" if lo > 0 else "worse" if hi < 0 else "within noise"


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of the per-user differences ``a - b`` (two models on the same users) and its
    ``level`` percentile-bootstrap interval, resampling users (Efron & Tibshirani, 1993): is
    a difference in a mean-over-users metric more than the noise of which users were drawn?"""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(
            f"paired_bootstrap needs two equal-length 1-D arrays, got {x.shape} and {y.shape}"
        )
    d = x - y
    idx = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(d[idx].mean(1), [tail, 100 - tail])
    return float(d.mean()), float(lo), float(hi)


def jsonable(v: Any, digits: int | None = None) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (the page encodes missing values as null);
    floats rounded to ``digits`` significant digits when given."""
    if isinstance(v, dict):
        return {str(k): jsonable(x, digits) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x, digits) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if finite_or_none(v) is None:
            return None
        if digits is not None and v != 0.0:
            return float(f"{v:.{digits}g}")
    return v
