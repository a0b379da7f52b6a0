"""Classic test problems with known Pareto fronts, usable as a study's ``objective``.

They make it possible to check a driver in seconds: ``objective: zdt1`` with
``problem: {n_var: 10}`` searches ``x0 .. x9`` in [0, 1] and reports ``f1``, ``f2``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from moo_search.registry import PROBLEMS

__all__ = ["Problem"]


@dataclass(frozen=True)
class Problem:
    name: str
    n_var: int
    n_obj: int
    evaluate: Callable[[np.ndarray], np.ndarray]  # x (n_var,) -> f (n_obj,), minimised
    true_hypervolume: Callable[[np.ndarray], float]  # reference point -> HV of the true front
    pymoo_name: str = ""

    def reference_front(self) -> np.ndarray:
        """pymoo's sampled Pareto front of this problem (ZDT: 100 points; DTLZ2: 91 points on
        Das-Dennis directions with 12 partitions), the usual yardstick for a driver's HV."""
        from pymoo.problems import get_problem
        from pymoo.util.ref_dirs import get_reference_directions

        prob = get_problem(
            self.pymoo_name, n_var=self.n_var, **({"n_obj": self.n_obj} if self.n_obj > 2 else {})
        )
        if self.n_obj > 2:
            return prob.pareto_front(
                get_reference_directions("das-dennis", self.n_obj, n_partitions=12)
            )
        return prob.pareto_front()

    @property
    def objectives(self) -> list[str]:
        return [f"f{j + 1}" for j in range(self.n_obj)]

    @property
    def variables(self) -> list[str]:
        return [f"x{i}" for i in range(self.n_var)]


def _zdt_g(x: np.ndarray) -> float:
    return 1.0 + 9.0 * float(np.sum(x[1:])) / (len(x) - 1)


@PROBLEMS.register("zdt1")
def zdt1(n_var: int = 30, **_: int) -> Problem:
    """ZDT1 (Zitzler, Deb & Thiele, 2000): convex front f2 = 1 - sqrt(f1)."""

    def f(x: np.ndarray) -> np.ndarray:
        g = _zdt_g(x)
        return np.array([x[0], g * (1.0 - math.sqrt(x[0] / g))])

    def hv(ref: np.ndarray) -> float:  # integral of (r2 - (1 - sqrt a)) over [0, 1] + the rest
        r1, r2 = float(ref[0]), float(ref[1])
        return (r2 - 1.0) + 2.0 / 3.0 + (r1 - 1.0) * r2

    return Problem("zdt1", n_var, 2, f, hv, "zdt1")


@PROBLEMS.register("zdt2")
def zdt2(n_var: int = 30, **_: int) -> Problem:
    """ZDT2: non-convex front f2 = 1 - f1^2."""

    def f(x: np.ndarray) -> np.ndarray:
        g = _zdt_g(x)
        return np.array([x[0], g * (1.0 - (x[0] / g) ** 2)])

    def hv(ref: np.ndarray) -> float:
        r1, r2 = float(ref[0]), float(ref[1])
        return (r2 - 1.0) + 1.0 / 3.0 + (r1 - 1.0) * r2

    return Problem("zdt2", n_var, 2, f, hv, "zdt2")


@PROBLEMS.register("dtlz2")
def dtlz2(n_var: int | None = None, n_obj: int = 3, **_: int) -> Problem:
    """DTLZ2 (Deb et al., 2002): the front is the unit sphere in the positive orthant."""
    m = n_obj
    n = n_var if n_var is not None else m + 9

    def f(x: np.ndarray) -> np.ndarray:
        g = float(np.sum((x[m - 1 :] - 0.5) ** 2))
        out = np.empty(m)
        for j in range(m):
            v = 1.0 + g
            v *= np.prod(np.cos(x[: m - 1 - j] * np.pi / 2))
            if j > 0:
                v *= math.sin(x[m - 1 - j] * np.pi / 2)
            out[j] = v
        return out

    def hv(ref: np.ndarray) -> float:
        # box minus the sphere's octant volume (valid for ref >= 1 in every coordinate)
        unit_ball = math.pi ** (m / 2) / math.gamma(m / 2 + 1)
        return float(np.prod(ref)) - unit_ball / 2**m

    return Problem("dtlz2", n, m, f, hv, "dtlz2")
