"""The cold studies' base config, chosen on validation: one fine-tune per setting and item-split
seed, judged by validation metrics only (test is never printed or read).

    python benchmarks/sweep_cold.py --spec studies/cold_ml100k.yaml --seeds 0 \\
        --grid train.content_steps=0,30,60,90 [--set fusion.new_items=auto ...]
    python benchmarks/sweep_cold.py --spec studies/business_cold.yaml --seeds 0 1 2 \\
        --grid loss.task_item_dropout=0.25,0.5,0.75 --grid loss.weights.conversion=0.2,1.0 \\
        --choose cold_item/click_auc cold_item/conversion_auc

Prints, per setting, the validation metrics it is chosen on (``--choose``, default
cold_item/ndcg@K: their mean, each read in its direction, so a minimised one counts
negated) and warm ndcg@K for each seed and their mean, what each trial chose for its new
items, and the setting with the best mean, ties to the first (list the simplest first).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

from moo_search import load_spec
from moo_search.errors import MooSearchError
from moo_search.recommender.metrics import metric_direction
from moo_search.recommender.trial import Trial


def _grid(items: list[str]) -> list[list[str]]:
    axes = []
    for item in items:
        path, _, values = item.partition("=")
        axes.append([f"{path}={v}" for v in values.split(",")])
    return [list(c) for c in itertools.product(*axes)] or [[]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--grid", action="append", default=[], help="path=v1,v2,... (product)")
    ap.add_argument("--set", action="append", default=[], help="path=value for every trial")
    ap.add_argument("--choose", nargs="+", help="validation metrics to choose on (their mean)")
    args = ap.parse_args(argv)
    rows = []
    for setting in _grid(args.grid):
        cold, warm = [], []
        for seed in args.seeds:
            try:
                spec = load_spec(args.spec, [*args.set, *setting, f"data.split.cold_seed={seed}"])
            except MooSearchError as e:
                print(f"sweep_cold: error: {e}", file=sys.stderr)
                return 2
            k = spec.eval.k
            names = args.choose or [f"cold_item/ndcg@{k}"]
            t0 = time.perf_counter()
            result = Trial(spec).run()
            val = result.metrics["val"]
            got = [val.get(n, float("nan")) for n in names]
            sign = [1.0 if metric_direction(n) == "maximize" else -1.0 for n in names]
            cold.append(float(np.mean([g * s for g, s in zip(got, sign)])))
            warm.append(val.get(f"ndcg@{k}", float("nan")))
            shown = ", ".join(f"val {n} {g:.4f}" for n, g in zip(names, got))
            print(
                f"{' '.join(setting) or '(base)'} seed {seed}: {shown}, val ndcg@{k} "
                f"{warm[-1]:.4f}, new items {result.history.get('new_items')}, "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        rows.append((setting, float(np.mean(cold)), float(np.mean(warm))))
    print(f"\nmean over seeds {args.seeds} (validation only)")
    for setting, c, w in rows:
        print(f"  {' '.join(setting) or '(base)':<40} chosen on {c:.4f}  ndcg {w:.4f}")
    best = max(rows, key=lambda r: r[1])
    print(f"chosen on validation: {' '.join(best[0]) or '(base)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
