"""The quickstart fine-tune with the attention kernel and the dropouts it had before
(``model.attention=sdpa``, the checkpoint's dropout 0.1, ``adapter.dropout=0.05``) against
each change alone (eager attention; no dropout) and against both (the quickstart now),
side by side in one process, seeds interleaved so that machine noise hits every mode alike.

    python benchmarks/bench_cpu_kernels.py [--spec studies/quickstart.yaml] [--seeds 3]

Why: measured on a 2-core AVX-512 BF16 CPU, dropout's random masks cost about a third of a
training step, and without them torch's SDPA kernel trains slower than eager attention (its
backward), so neither change alone gains and both together do. Prints each
trial's training and total seconds, the mean speed ratios against the first mode, and the
test metrics per mode with their seed-to-seed spread, so that a change of metric can be
judged against seed noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from moo_search import load_spec, run_trial
from moo_search.errors import MooSearchError

MODES = {
    "sdpa, dropout (before)": [
        "model.attention=sdpa",
        "model.dropout=null",
        "adapter.dropout=0.05",
    ],
    "eager, dropout": ["model.attention=eager", "model.dropout=null", "adapter.dropout=0.05"],
    "sdpa, no dropout": ["model.attention=sdpa", "model.dropout=0.0", "adapter.dropout=0.0"],
    "eager, no dropout (now)": [
        "model.attention=eager",
        "model.dropout=0.0",
        "adapter.dropout=0.0",
    ],
}
METRICS = ("precision@10", "ndcg@10", "tail/precision@10", "novelty@10", "ctr_auc")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        specs = {
            (mode, seed): load_spec(args.spec, [*sets, f"seed={seed}"])
            for mode, sets in MODES.items()
            for seed in range(args.seeds)
        }
    except MooSearchError as e:
        print(f"bench_cpu_kernels: error: {e}", file=sys.stderr)
        return 2
    # warm-up, not timed: data, backbone, tokens and each kernel's frozen-layer cache
    for sets in MODES.values():
        run_trial(load_spec(args.spec, [*sets, "train.max_steps=2"]))
    rows: dict[str, list[tuple[float, float, dict[str, float]]]] = {m: [] for m in MODES}
    print(f"{'mode':<26}{'seed':>5}{'train s':>9}{'trial s':>9}  test precision@10")
    for seed in range(args.seeds):
        for mode in MODES:
            r = run_trial(specs[mode, seed])
            rows[mode].append((r.cost["train_seconds"], r.cost["seconds"], r.metrics["test"]))
            print(
                f"{mode:<26}{seed:>5}{r.cost['train_seconds']:9.1f}{r.cost['seconds']:9.1f}"
                f"  {r.metrics['test']['precision@10']:.4f}",
                flush=True,
            )
    first = next(iter(MODES))
    base_train = statistics.mean(t for t, _, _ in rows[first])
    base_total = statistics.mean(s for _, s, _ in rows[first])
    print(f"\nmean over {args.seeds} seeds; speed-up = {first!r} time / mode time")
    head = "".join(f"{m:>22}" for m in METRICS)
    print(f"{'mode':<26}{'train s':>9}{'x':>6}{'trial s':>9}{'x':>6}{head}")
    for mode, rs in rows.items():
        train = statistics.mean(t for t, _, _ in rs)
        total = statistics.mean(s for _, s, _ in rs)
        cells = ""
        for m in METRICS:
            vals = [mt[m] for _, _, mt in rs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells += f"{statistics.mean(vals):>14.4f} ±{sd:.4f}"
        print(
            f"{mode:<26}{train:9.1f}{base_train / train:6.2f}{total:9.1f}"
            f"{base_total / total:6.2f}{cells}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
