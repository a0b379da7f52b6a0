"""The quickstart trial in plain fp32 vs with bf16 autocast and the frozen-layer cache, side by
side in one process, with the machine's own matmul rates beside it.

Baseline ("fp32"): the project's trial with ``train.amp=off`` and ``train.layer_cache=false``
-- a plain fp32 PEFT loop over the same model: tokenized once, batches padded to their own
length, the catalog encoded once per evaluation, every encoder layer run for every text.
New ("fast"): ``train.amp=auto`` (bf16 where the CPU multiplies it in hardware) and the
frozen lower layers computed once per study (the first fast trial computes them; later
trials of a study reuse them, which is what a study sees).

    python benchmarks/bench_trial.py [--spec studies/quickstart.yaml] [--seeds 3]

Prints the fp32 and bf16 matmul rates of this machine, each trial's wall time and its
achieved TFLOP/s (the same nominal work for both modes: a full-depth forward for every text
encoded, a backward through the adapted layers for the trained ones), the speed ratio, and
the test metrics per seed with their seed-to-seed spread, so a bf16 result can be judged
against the fp32 noise.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from typing import Any

import torch

from moo_search import load_spec, run_trial
from moo_search.recommender.data.movielens import cache_dir
from moo_search.recommender.model import layer_cache
from moo_search.recommender.train._setup import cpu_has_fast_bf16

METRICS = ("precision@10", "ndcg@10", "ild@10", "novelty@10", "tail/precision@10", "ctr_auc")


def matmul_tflops(dtype: torch.dtype, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def nominal_flops(spec: Any, result: Any) -> float:
    """Work of the trial counted the uncached way: 2 FLOP per weight per token forward through
    all layers, twice that again backward through the adapted ones (activation gradients)."""
    from transformers import AutoConfig

    from moo_search.recommender.model.encoder import resolve_model_path

    cfg = AutoConfig.from_pretrained(resolve_model_path(spec.model))
    h, f, n_layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token_layer = 2 * (4 * h * h + 2 * h * f)
    adapted = len(spec.adapter.layers) if spec.adapter.layers else n_layers
    train_tokens = result.cost["train_tokens"]
    # encoded without grad: the catalog per refresh and per evaluation, and the users
    evals = result.cost["encoded_tokens"]
    return per_token_layer * (train_tokens * (n_layers + 2 * adapted) + evals * n_layers)


def run(spec_path: str, overrides: list[str], seed: int) -> tuple[float, Any, Any]:
    spec = load_spec(spec_path, [*overrides, f"seed={seed}", "train.progress=false"])
    t = time.perf_counter()
    result = run_trial(spec)
    return time.perf_counter() - t, result, spec


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    fp32, bf16 = matmul_tflops(torch.float32), matmul_tflops(torch.bfloat16)
    print(f"machine: torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"matmul 1024^2: fp32 {fp32:.3f} TFLOP/s, bf16 {bf16:.3f} TFLOP/s ({bf16 / fp32:.2f}x)")
    print(f"fast bf16 in hardware (AMX / AVX-512 BF16): {cpu_has_fast_bf16()}")

    modes = {
        "fp32": ["train.amp=off", "train.layer_cache=false"],
        "fast": ["train.amp=auto", "train.layer_cache=true"],
    }
    shutil.rmtree(cache_dir() / "hidden", ignore_errors=True)  # the first fast trial pays it
    layer_cache._MEMORY.clear()
    rows: dict[str, list[tuple[float, Any]]] = {m: [] for m in modes}
    for seed in range(args.seeds):  # interleaved: drift on a shared machine hits both
        for mode, overrides in modes.items():
            secs, result, spec = run(args.spec, overrides, seed)
            rows[mode].append((secs, result))
            work = nominal_flops(spec, result)
            print(
                f"  seed {seed} {mode}: {secs:6.1f} s wall, train {result.cost['train_seconds']:.1f} s, "
                f"{work / secs / 1e12:.3f} TFLOP/s achieved (nominal {work / 1e12:.2f} TFLOP)"
            )
    print()
    mean = {m: statistics.mean(s for s, _ in r) for m, r in rows.items()}
    warm = statistics.mean(s for s, _ in rows["fast"][1:]) if args.seeds > 1 else mean["fast"]
    print(f"wall per trial: fp32 {mean['fp32']:.1f} s, fast {mean['fast']:.1f} s")
    print(f"speed-up: {mean['fp32'] / mean['fast']:.2f}x (mean over seeds, first fast trial builds")
    print(
        f"  the cache); {mean['fp32'] / warm:.2f}x with the cache warm (as in a study after trial 0)"
    )
    print()
    print(
        f"{'test metric':20s} "
        + " ".join(f"{m + ' s' + str(i):>10s}" for m in modes for i in range(args.seeds))
    )
    for k in METRICS:
        vals = {m: [r.metrics["test"].get(k, float("nan")) for _, r in rows[m]] for m in modes}
        cells = " ".join(f"{v:10.4f}" for m in modes for v in vals[m])
        spread = max(vals["fp32"]) - min(vals["fp32"])
        gap = abs(statistics.mean(vals["fast"]) - statistics.mean(vals["fp32"]))
        verdict = "within" if gap <= max(spread, 1e-4) else "OUTSIDE"
        print(f"{k:20s} {cells}   fp32 spread {spread:.4f}, |mean gap| {gap:.4f}: {verdict}")


if __name__ == "__main__":
    main()
