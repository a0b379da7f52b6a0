"""Does fine-tuning the text tower pay on new items? One fine-tune against the content baselines.

    python benchmarks/bench_cold.py [--spec studies/cold_ml1m.yaml ...] [--seeds 0 1 2 3 4]
                                    [--set path=value ...]

For each spec and item-split seed (``data.split.cold_seed``: which items are held out), one
fine-tune at the spec's base config, EASE, TF-IDF item-kNN, the frozen base encoder, the
hybrid (EASE on warm items, the better content baseline on new ones) and the frozen map (EASE
on warm items, new ones through a ridge map from the frozen encoder onto EASE: the
fine-tune's map without fine-tuning), all chosen on validation. On the test split it prints cold_item/recall@K and ndcg@K (each test user with a
relevant held-out item ranks the test part's held-out items) and warm precision@10, and each
difference (fine-tune minus baseline) paired by user with a 95% bootstrap interval, per seed
and pooled over seeds (users of every seed together), and per baseline how many seeds the
fine-tune's new-item recall is above it beyond noise, not below it, and at least 1.2x it.
The fine-tune's new-item scoring (fusion.new_items and its knobs) is what its trial chose on
validation. Nothing is selected on test.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from moo_search import load_spec
from moo_search.errors import MooSearchError
from moo_search.recommender.baselines.ranking import BaselineContext
from moo_search.recommender.evaluate import cold_item_lists, evaluate_lists
from moo_search.recommender.metrics import EvalContext, paired_bootstrap, ranking_per_user
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.trial import Trial

BASELINES = ("TF-IDF", "Frozen encoder", "Hybrid", "Frozen map", "EASE")


def per_user(score: Any, spec: Any, data: Any, k_cold: int) -> dict[str, np.ndarray]:
    """Per test user: cold_item recall/ndcg@k_cold (users with a relevant new item) and warm
    precision@k (users with a relevant warm item); the user ids under ``*_users``."""
    split = data.split
    users, lists, relevant = cold_item_lists(score, split, "test", k_cold)
    cold = ranking_per_user(lists, users, relevant, k_cold)
    res = evaluate_lists(
        score,
        data.ds,
        split,
        eval_cfg=spec.eval,
        parts=("test",),
        features=data.features,
    )
    w_users, w_lists = res[1]["test"]
    ctx = EvalContext.from_split(split, "test", data.features)
    k = spec.eval.k
    warm = ranking_per_user(w_lists, w_users, ctx.relevant, k)
    return {
        "cold_users": users,
        "recall": cold[f"recall@{k_cold}"],
        "ndcg": cold[f"ndcg@{k_cold}"],
        "warm_users": w_users,
        "precision": warm[f"precision@{k}"],
    }


def _diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], key: str) -> np.ndarray:
    users = "warm_users" if key == "precision" else "cold_users"
    assert np.array_equal(a[users], b[users])
    return np.asarray(a[key] - b[key], dtype=np.float64)


def _interval(d: np.ndarray) -> str:
    mean, lo, hi = paired_bootstrap(d, np.zeros_like(d))
    says = "better" if lo > 0 else "worse" if hi < 0 else "within noise"
    return f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}] {says}"


def run_seed(spec: Any, k_cold: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    data = prepare_data(spec)
    t0 = time.perf_counter()
    trial = Trial(spec)
    result = trial.run()
    t_trial = time.perf_counter() - t0
    models = {"fine-tune": per_user(trial.scores, spec, data, k_cold)}
    ctx = BaselineContext.of(spec, data)
    t0 = time.perf_counter()
    for name in BASELINES:
        models[name] = per_user(ctx.scorer(name), spec, data, k_cold)
    k = spec.eval.k
    info = {
        "trial_val": {
            f"cold_item/ndcg@{k}": result.metrics["val"].get(f"cold_item/ndcg@{k}"),
            **(result.history.get("new_items") or {}),
        },
        "trial_seconds": t_trial,
        "baseline_seconds": time.perf_counter() - t0,
        "tuned": ctx.tuned,
        "new_items": (len(data.split.cold_val_items), len(data.split.cold_test_items)),
    }
    return models, info


def _count(won: dict[str, int], d: np.ndarray, ratio: float) -> None:
    """Tally one seed: recall above the baseline beyond noise (interval above 0), not below it
    (interval not below 0), and at least 1.2x its recall."""
    _, lo, hi = paired_bootstrap(d, np.zeros_like(d))
    won["above"] = won.get("above", 0) + int(lo > 0)
    won["not below"] = won.get("not below", 0) + int(hi >= 0)
    won["x1.2"] = won.get("x1.2", 0) + int(ratio >= 1.2)


def _print_pooled(
    path: str,
    seeds: list[int],
    pooled: dict[str, dict[str, list[np.ndarray]]],
    wins: dict[str, dict[str, int]],
    seconds: list[float],
) -> None:
    n = len(seeds)
    print(f"\n{path}: pooled over seeds {seeds} (paired by user within each seed)")
    print(
        f"  fine-tune wall time: {np.mean(seconds):.0f} s per seed (min {min(seconds):.0f}, max {max(seconds):.0f})"
    )
    for name, row in pooled.items():
        parts = [f"{key} {_interval(np.concatenate(v))}" for key, v in row.items()]
        print(f"  fine-tune minus {name}: " + "; ".join(parts))
        w = wins[name]
        print(
            f"    seeds with the fine-tune's recall above it beyond noise {w['above']}/{n}, "
            f"not below it {w['not below']}/{n}, at least 1.2x it {w['x1.2']}/{n}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--spec", nargs="+", default=["studies/cold_ml100k.yaml", "studies/cold_ml1m.yaml"]
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--k", type=int, default=20, help="cut-off of the cold_item metrics")
    ap.add_argument("--set", action="append", default=[], help="path=value for every trial")
    args = ap.parse_args(argv)
    k = args.k
    for path in args.spec:
        pooled: dict[str, dict[str, list[np.ndarray]]] = {}
        wins: dict[str, dict[str, int]] = {}
        seconds: list[float] = []
        for seed in args.seeds:
            try:
                spec = load_spec(path, [*args.set, f"data.split.cold_seed={seed}"])
            except MooSearchError as e:
                print(f"bench_cold: error: {e}", file=sys.stderr)
                return 2
            models, info = run_seed(spec, k)
            seconds.append(info["trial_seconds"])
            ft = models["fine-tune"]
            print(
                f"\n{spec.name} ({spec.data.dataset}), item-split seed {seed}: "
                f"{info['new_items'][0]} / {info['new_items'][1]} new items (val / test), "
                f"{len(ft['cold_users'])} test users with a relevant new item, "
                f"{len(ft['warm_users'])} with a relevant warm item; fine-tune "
                f"{info['trial_seconds']:.0f} s, baselines {info['baseline_seconds']:.0f} s"
            )
            tuned = "; ".join(f"{n}: {v}" for n, v in info["tuned"].items())
            tuned += f"; fine-tune: {info['trial_val']}"
            print(f"  chosen on validation: {tuned}")
            head = f"  {'model':<16}{f'recall@{k}':>12}{f'ndcg@{k}':>10}{'P@10 warm':>11}"
            print(head)
            for name, m in models.items():
                print(
                    f"  {name:<16}{m['recall'].mean():>12.4f}{m['ndcg'].mean():>10.4f}"
                    f"{m['precision'].mean():>11.4f}"
                )
            for name in BASELINES:
                b = models[name]
                row = pooled.setdefault(name, {"recall": [], "ndcg": [], "precision": []})
                parts = []
                for key in ("recall", "ndcg", "precision"):
                    d = _diff(ft, b, key)
                    row[key].append(d)
                    parts.append(f"{key} {_interval(d)}")
                ratio = ft["recall"].mean() / max(b["recall"].mean(), 1e-12)
                print(f"  fine-tune minus {name}: " + "; ".join(parts) + f" (recall x{ratio:.2f})")
                _count(wins.setdefault(name, {}), row["recall"][-1], ratio)
        if len(args.seeds) > 1:
            _print_pooled(path, args.seeds, pooled, wins, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
