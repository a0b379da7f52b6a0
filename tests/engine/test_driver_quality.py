"""The drivers lose nothing against the libraries they wrap (seeded, same budget).

Hypervolume is measured over every evaluated point, relative to the hypervolume of pymoo's
reference front for the problem (ZDT1: 100 points; DTLZ2: 91 points); the analytic ratio is
printed too. Reference point (1.1, ...) throughout.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from moo_search.drivers import run_study
from moo_search.pareto import hypervolume
from moo_search.registry import PROBLEMS
from moo_search.spec import spec_from_dict

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.ERROR)

CASES = [
    # backend, algorithm, problem, options, population, evaluations, required ratio
    ("pymoo", "nsga2", "zdt1", {"n_var": 10}, 50, 5000, 0.97),
    ("optuna", "nsga2", "zdt1", {"n_var": 10}, 50, 5000, 0.92),
    ("pymoo", "nsga3", "dtlz2", {"n_obj": 3}, 92, 4000, 0.95),
    ("optuna", "nsga3", "dtlz2", {"n_obj": 3}, 92, 4000, 0.95),
]


def _ours(backend, algorithm, name, options, pop, n):
    problem = PROBLEMS.get(name)(**options)
    spec = spec_from_dict(
        {
            "name": f"{backend}-{name}",
            "objective": name,
            "problem": options,
            "objectives": [{"metric": f, "direction": "minimize"} for f in problem.objectives],
            "driver": {
                "backend": backend,
                "algorithm": algorithm,
                "population": pop,
                "seed": 0,
                "reference_point": [1.1] * problem.n_obj,
            },
            "budget": {"n_trials": n},
            "storage": "memory://",
        }
    )
    study = run_study(spec)
    return np.array([t.values for t in study.trials if t.values is not None])


def _bare_pymoo(algorithm, name, options, pop, n):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.core.callback import Callback
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem
    from pymoo.util.ref_dirs import get_reference_directions

    problem = PROBLEMS.get(name)(**options)
    kw = {"n_obj": problem.n_obj} if problem.n_obj > 2 else {}
    prob = get_problem(name, n_var=problem.n_var, **kw)
    if algorithm == "nsga2":
        algo = NSGA2(pop_size=pop)
    else:
        algo = NSGA3(
            pop_size=pop,
            ref_dirs=get_reference_directions("das-dennis", problem.n_obj, n_partitions=12),
        )

    class Archive(Callback):
        def __init__(self):
            super().__init__()
            self.F = []

        def notify(self, algorithm):
            self.F.append(
                algorithm.off.get("F") if algorithm.off is not None else algorithm.pop.get("F")
            )

    cb = Archive()
    minimize(prob, algo, ("n_eval", n), seed=0, callback=cb, verbose=False)
    return np.vstack(cb.F)[:n]


def _bare_optuna(algorithm, name, options, pop, n):
    problem = PROBLEMS.get(name)(**options)
    cls = optuna.samplers.NSGAIISampler if algorithm == "nsga2" else optuna.samplers.NSGAIIISampler
    study = optuna.create_study(
        directions=["minimize"] * problem.n_obj, sampler=cls(population_size=pop, seed=0)
    )

    def objective(trial):
        x = np.array([trial.suggest_float(v, 0.0, 1.0) for v in problem.variables])
        return list(problem.evaluate(x))

    study.optimize(objective, n_trials=n)
    return np.array([t.values for t in study.trials])


@pytest.mark.parametrize(
    ("backend", "algorithm", "name", "options", "pop", "n", "required"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
)
def test_driver_matches_its_library(backend, algorithm, name, options, pop, n, required, capsys):
    problem = PROBLEMS.get(name)(**options)
    ref = [1.1] * problem.n_obj
    dirs = ["minimize"] * problem.n_obj
    yardstick = hypervolume(problem.reference_front(), ref, dirs)
    ours = _ours(backend, algorithm, name, options, pop, n)
    bare = (_bare_pymoo if backend == "pymoo" else _bare_optuna)(algorithm, name, options, pop, n)
    assert len(ours) == n
    r_ours = hypervolume(ours, ref, dirs) / yardstick
    r_bare = hypervolume(bare, ref, dirs) / yardstick
    analytic = hypervolume(ours, ref, dirs) / problem.true_hypervolume(np.array(ref))
    with capsys.disabled():
        print(
            f"\n{backend} {algorithm} {name}: ours {r_ours:.4f}, bare library {r_bare:.4f} "
            f"(of pymoo's reference front); ours {analytic:.4f} of the analytic front"
        )
    assert r_ours >= required
    assert abs(r_ours - r_bare) <= 0.02
