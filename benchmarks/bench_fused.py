"""Fine-tunes per hour trained together over one base (``driver.fuse``) against one at a
time: the same trials, at K = 1, 2, 4, 8, the two arms alternated, each in a fresh process
(its peak RSS its own).

    python benchmarks/bench_fused.py [--spec studies/quickstart.yaml] [--ks 1 2 4 8]
        [--study-k 4 --study-trials 8]

The K trials are the study's own kind: drawn from its search space by a seeded random
sampler (adapter type and rank, learning rate, loss weights, fusion, re-ranking), each with
the variants a study evaluates. Prints, per K, the wall time of each arm (trials only: the
process start and a warm-up are outside it), fine-tunes per hour, the ratio, the training
time's share, the peak RSS, and the largest difference of a trial's metrics between the two
arms (no dropout in the quickstart: fused trials get their solo metrics up to float
rounding; bf16 where the CPU has it). Then, with ``--study-k K``, the study itself run twice
with the same seed (``driver.fuse`` 1, then K; fresh storages): wall time, final validation
hypervolume, and the time each needed to reach the lower of the two final hypervolumes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

METRICS = ("precision@10", "ndcg@10", "novelty@10", "ild@10")


class Lines:
    """What the benchmark prints, also written to ``docs/figures/fused.txt`` as it goes
    (the figures the docs quote)."""

    def __init__(self, command: str) -> None:
        self.command, self.lines = command, list[str]()

    def print(self, line: str) -> None:
        from _docs_figures import write_figure

        print(line, flush=True)
        self.lines.append(line)
        write_figure("fused", self.command, self.lines)


def proposals(spec_path: str, k: int, sets: list[str]) -> list[Any]:
    """``k`` specs drawn from the study's search space (seeded: the same for both arms)."""
    import optuna

    from moo_search import load_spec
    from moo_search.drivers._runner import suggest

    spec = load_spec(spec_path, sets)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=k))
    out = []
    for _ in range(k):
        trial = study.ask()
        out.append(spec.with_params(suggest(trial, spec.search_space)))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return out


def arm(spec_path: str, k: int, fused: bool, sets: list[str], q: Any) -> None:
    """One arm in this (child) process: its trials' wall time, results and peak RSS."""
    from moo_search.recommender.objective import variant_grid
    from moo_search.recommender.trial import run_trial
    from moo_search.recommender.trial_fused import TrialRequest, run_trials_together

    specs = proposals(spec_path, k, sets)
    run_trial(specs[0].with_params({"train.max_steps": 2}))  # warm: data, caches, kernels
    t0 = time.perf_counter()
    if fused:
        results = run_trials_together([TrialRequest(s, variants=variant_grid(s)) for s in specs])
    else:
        results = [run_trial(s, variants=variant_grid(s)) for s in specs]
    wall = time.perf_counter() - t0
    bad = [repr(r) for r in results if isinstance(r, BaseException)]
    rows = [
        {
            "metrics": {p: {m: r.metrics[p][m] for m in METRICS} for p in ("val", "test")},
            "train": r.cost["train_seconds"],
        }
        for r in results
        if not isinstance(r, BaseException)
    ]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q.put({"wall": wall, "rows": rows, "failed": bad, "rss": rss})


def run_arm(spec_path: str, k: int, fused: bool, sets: list[str]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=arm, args=(spec_path, k, fused, sets, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--set", action="append", default=[], help="a spec override (path=value)")
    ap.add_argument("--study-k", type=int, default=0, help="also run the study at this fuse")
    ap.add_argument("--study-trials", type=int, default=8)
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_fused.py " + " ".join(argv or sys.argv[1:])
    out = Lines(command)
    out.print(
        f"{'K':>3} {'arm':<6}{'wall s':>8}{'per hour':>10}{'train %':>9}{'peak MB':>9}"
        f"{'ratio':>7}  max |metric diff| vs solo"
    )
    for j, k in enumerate(args.ks):
        order = [False, True] if j % 2 == 0 else [True, False]  # alternated
        res = {f: run_arm(args.spec, k, f, args.set) for f in order}
        for f in (False, True):
            r = res[f]
            if r["failed"]:
                out.print(f"{k:>3} {'fused' if f else 'solo'}: failed trials: {r['failed']}")
        solo, fused = res[False], res[True]
        diff = max(
            (
                abs(a["metrics"][p][m] - b["metrics"][p][m])
                for a, b in zip(solo["rows"], fused["rows"])
                for p in ("val", "test")
                for m in METRICS
            ),
            default=float("nan"),
        )
        for f in (False, True):
            r = res[f]
            share = 100 * sum(x["train"] for x in r["rows"]) / r["wall"]
            ratio = solo["wall"] / r["wall"]
            out.print(
                f"{k:>3} {'fused' if f else 'solo':<6}{r['wall']:>8.1f}{3600 * k / r['wall']:>10.1f}"
                f"{share:>8.0f}%{r['rss']:>9.0f}{ratio:>6.2f}x" + (f"  {diff:.2g}" if f else "")
            )
    if args.study_k > 1:
        study_time_to_hv(args.spec, args.study_k, args.study_trials, args.set, out)
    return 0


def study_time_to_hv(spec_path: str, k: int, n_trials: int, sets: list[str], out: Lines) -> None:
    """The study at ``driver.fuse`` 1 and ``k``: wall time and the time to a validation HV."""
    import tempfile
    from pathlib import Path

    import optuna
    from bench_study import first_reaching, history, run

    from moo_search.study import STUDY_ATTR

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fused-"))
    runs = {}
    for fuse in (1, k):
        sets_k = [*sets, f"driver.fuse={fuse}", f"storage=sqlite:///{tmp}/fuse{fuse}.db"]
        runs[fuse] = run(spec_path, sets_k, tmp / f"fuse{fuse}", n_trials)
    ref = runs[1][0].user_attrs[STUDY_ATTR.REFERENCE]
    curves = {f: history(study, t0, ref, "val") for f, (study, t0, _) in runs.items()}
    target = min(c[1][-1] for c in curves.values())
    out.print(
        f"the study, {n_trials} fine-tunes, driver.fuse 1 vs {k} (HV at the first run's point)"
    )
    for f, (_, _, wall) in runs.items():
        reach = first_reaching(*curves[f], target)
        shown = "-" if reach is None else f"{reach:.0f} s"
        out.print(
            f"  fuse {f}: wall {wall:.0f} s, final val HV {curves[f][1][-1]:.4f}, "
            f"reaches {target:.4f} at {shown}"
        )


if __name__ == "__main__":
    sys.exit(main())
