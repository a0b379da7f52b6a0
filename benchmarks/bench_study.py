"""The quickstart study twice with the same seed: the round-1 behaviour (fp32, every layer
recomputed, no re-ranking or fusion sweep, no early stopping) and the shipped one (bf16
autocast where the CPU has it, frozen layers computed once, re-ranked and re-weighted variants
of every fine-tune, Pareto-rank early stopping), one after the other in one process.

    python benchmarks/bench_study.py [--spec studies/quickstart.yaml] [--n-trials 12]

Prints, for each mode: wall time, fine-tunes completed / stopped, variants, front
points, the final hypervolume on validation and on test (both at the round-1 study's
reference point), and the wall time each needed to reach the round-1 run's final validation
hypervolume, with the ratio (goal: <= 50%). Then the hypervolume over wall time of both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from moo_search import load_spec
from moo_search.drivers import run_study
from moo_search.pareto import hypervolume, pareto_mask
from moo_search.study import ATTR, STUDY_ATTR, is_derived, is_feasible

ROUND1 = [
    "train.amp=off",
    "train.layer_cache=false",
    "rerank.sweep=false",
    "fusion.sweep=false",
    "driver.early_stopping.enabled=false",
]


def run(spec_path: str, overrides: list[str], out: Path, n_trials: int) -> tuple[Any, float, float]:
    spec = load_spec(spec_path, [*overrides, f"out_dir={out}", "train.progress=false"])
    t0 = time.time()
    study = run_study(spec, n_trials=n_trials)
    return study, t0, time.time() - t0


def history(study: Any, t0: float, ref: list[float], part: str) -> tuple[list[float], list[float]]:
    """(seconds since start, HV of the feasible points recorded by then), on ``part``."""
    names = [o["metric"] for o in study.user_attrs[STUDY_ATTR.OBJECTIVES]]
    dirs = [o["direction"] for o in study.user_attrs[STUDY_ATTR.OBJECTIVES]]
    done = [
        t
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if is_feasible(t) and t.datetime_complete is not None
    ]
    done.sort(key=lambda t: t.datetime_complete)
    times, hvs, pts = [], [], []
    for t in done:
        m = t.user_attrs[ATTR.METRICS][part]
        if any(m.get(n) is None for n in names):
            continue
        pts.append([float(m[n]) for n in names])
        F = np.array(pts)
        times.append(t.datetime_complete.timestamp() - t0)
        hvs.append(hypervolume(F[pareto_mask(F, dirs)], ref, dirs))
    return times, hvs


def first_reaching(times: list[float], hvs: list[float], target: float) -> float | None:
    return next((t for t, h in zip(times, hvs) if h >= target - 1e-12), None)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--n-trials", type=int, default=12)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-study-"))
    runs = {}
    for mode, overrides in (("round-1", ROUND1), ("shipped", [])):
        study, t0, wall = run(args.spec, overrides, tmp / mode, args.n_trials)
        runs[mode] = (study, t0, wall)
        print(f"{mode}: {wall:.0f} s", flush=True)
    ref = runs["round-1"][0].user_attrs[STUDY_ATTR.REFERENCE]
    r1_val = history(*runs["round-1"][:2], ref, "val")
    target = r1_val[1][-1]
    print(f"\nreference point (round-1 study's): {ref}; target = round-1 final val HV {target:.4f}")
    header = (
        f"{'mode':8s} {'wall s':>7s} {'fine-tunes':>10s} {'stopped':>7s} {'variants':>8s} "
        f"{'front':>5s} {'HV val':>7s} {'HV test':>7s} {'reach target':>12s}"
    )
    print(header)
    reach = {}
    for mode, (study, t0, wall) in runs.items():
        trials = study.get_trials()
        fine = [t for t in trials if not is_derived(t) and t.state.name == "COMPLETE"]
        stopped = [t for t in trials if t.state.name == "PRUNED" and ATTR.PRUNED_AT in t.user_attrs]
        variants = [t for t in trials if is_derived(t)]
        val = history(study, t0, ref, "val")
        test = history(study, t0, ref, "test")
        reach[mode] = first_reaching(*val, target)
        front = sum(1 for t in study.best_trials if is_feasible(t))
        got = "-" if reach[mode] is None else f"{reach[mode]:.0f} s"
        print(
            f"{mode:8s} {wall:7.0f} {len(fine):10d} {len(stopped):7d} {len(variants):8d} "
            f"{front:5d} {val[1][-1]:7.4f} {test[1][-1]:7.4f} {got:>12s}"
        )
    if reach["round-1"] and reach["shipped"]:
        print(
            f"\ntime to the round-1 final validation HV: shipped / round-1 = "
            f"{reach['shipped'] / reach['round-1']:.2f} (goal <= 0.50)"
        )
    print("\nvalidation HV over wall time (s: HV):")
    for mode, (study, t0, _) in runs.items():
        times, hvs = history(study, t0, ref, "val")
        step = max(1, len(times) // 12)
        print(
            f"  {mode}: " + ", ".join(f"{t:.0f}: {h:.4f}" for t, h in list(zip(times, hvs))[::step])
        )
    print(f"\nstudies kept in {tmp}")


if __name__ == "__main__":
    main()
