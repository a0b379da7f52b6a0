"""The business study's front, its trade-offs, and each task's best trial against its count
baseline on test, paired by user, with the text tower ablated.

    python benchmarks/bench_business.py [reports/business] [--boot 1000]
    python benchmarks/bench_business.py --cold [--spec studies/business_cold.yaml] [--seeds 0 1 2]

Run ``moo-search run studies/business.yaml`` first. For the study's Pareto front
(validation) it prints every point's validation and test values and, between neighbouring
front points ordered by click AUC, the conversion AUC gained per click AUC given up. Then for
each task (click AUC, conversion AUC, satisfaction RMSE) it takes the trial best on
validation, re-runs its config (same seed) and compares it on test with the task's count
baseline, the difference with a 95% bootstrap interval over users (a user's pairs stay
together), and with the same model's heads refit without the text tower (the semantic z-score
zeroed and the trained part, which reads the tower's embeddings, silenced): what the text tower
contributes. Before that, per task metric, the front's best and worst trial (on validation)
paired on validation and test: whether the front spans more than twice the interval's
half-width, a trade-off to choose from. Nothing is chosen on test.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from moo_search import load_spec
from moo_search.pareto import pareto_mask
from moo_search.recommender.baselines.ranking import BaselineContext
from moo_search.recommender.baselines.tasks import count_task_predictions
from moo_search.recommender.metrics import auc
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.trial import Trial
from moo_search.study import load_study

TASKS = {
    "click_auc": ("click", "maximize"),
    "conversion_auc": ("conversion", "maximize"),
    "satisfaction_rmse": ("satisfaction", "minimize"),
}


def head_predictions(scorer: Any, split: Any, spec: Any, part: str) -> dict[str, np.ndarray]:
    """Each task head's prediction on ``part``'s pairs of that task."""
    from moo_search.recommender.task_eval import task_predictions

    kw = {"negatives": spec.eval.click_negatives, "seed": spec.seed}
    return {
        task: task_predictions(scorer, split, part, task, **kw)[1]
        for task in ("click", "conversion", "satisfaction")
    }


def without_text(scorer: Any, data: Any, spec: Any) -> Any:
    """The same model without what the text tower gives the tasks: the semantic feature
    zeroed and the trained part (which reads the tower's embeddings) silenced, the linear heads
    refit on validation over the count features and the backbone's score alone."""
    import copy

    from moo_search.recommender.task_eval import fit_task_heads

    bare = replace(scorer, model=copy.deepcopy(scorer.model), user_emb=None)
    towers = getattr(bare.model, "task_towers", None)
    if towers is not None:
        towers.out.data.zero_()
    fit_task_heads(bare, data.split, negatives=spec.eval.click_negatives, seed=spec.seed)
    return bare


def metric(task: str, y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2))) if task == "satisfaction" else auc(y, p)


def paired(
    task: str, users: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, boot: int
) -> tuple[float, float, float]:
    """metric(a) - metric(b) and its 95% interval, resampling users (their pairs together)."""
    uniq, inv = np.unique(users, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([order[starts[u] : starts[u + 1]] for u in pick])
        diffs.append(metric(task, y[idx], a[idx]) - metric(task, y[idx], b[idx]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return metric(task, y, a) - metric(task, y, b), float(lo), float(hi)


COLD = {
    "cold_item/click_auc": "click",
    "cold_item/conversion_auc": "conversion",
    "cold_item/satisfaction_rmse": "satisfaction",
}


def cold(spec_path: str, seeds: list[int], boot: int) -> int:
    """New items: per item split, the spec's base config (one fine-tune) against the count and
    content baselines (the best on validation per task), paired by user on test; then pooled
    over the splits."""
    from moo_search.recommender.baselines.cold_tasks import cold_task_predictions
    from moo_search.recommender.task_eval import task_predictions

    pooled: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for seed in seeds:
        spec = load_spec(spec_path).with_params({"data.split.cold_seed": seed})
        trial = Trial(spec)
        trial.run()
        data = trial.data
        base = cold_task_predictions(BaselineContext.of(spec, data), ("val", "test"))
        kw = {"negatives": spec.eval.click_negatives, "seed": spec.seed, "cold": True}
        print(f"item split {seed}: fine-tune {trial.result.cost['seconds']:.0f} s")
        for name, task in COLD.items():
            sign = 1 if task != "satisfaction" else -1
            best = max(
                base["val"],
                key=lambda b: (
                    sign * metric(task, base["val"][b][task][0].y, base["val"][b][task][1])
                ),
            )
            pairs, theirs = base["test"][best][task]
            mine = task_predictions(trial.scorer, data.split, "test", task, **kw)[1]
            d, lo, hi = paired(task, pairs.users, pairs.y, mine, theirs, boot)
            counts = metric(task, pairs.y, base["test"]["Counts"][task][1])
            print(
                f"  {name:28s} fine-tune {metric(task, pairs.y, mine):.4f}  best baseline on "
                f"validation: {best} {metric(task, pairs.y, theirs):.4f} (counts {counts:.4f})  "
                f"diff {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            )
            users = pairs.users + seed * 10**7  # a user of another split is another unit
            pooled.setdefault(name, []).append((users, pairs.y, mine, theirs))
    print(f"pooled over item splits {seeds} (fine-tune minus the best baseline of each split):")
    for name, rows in pooled.items():
        task = COLD[name]
        cat = [np.concatenate(c) for c in zip(*rows)]
        d, lo, hi = paired(task, *cat, boot)
        print(f"  {name:28s} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return 0


class Runs:
    """Trials of the study re-run from their parameters (same seed), each once."""

    def __init__(self, spec: Any) -> None:
        self.spec, self.done = spec, {}

    def __call__(self, t: Any) -> tuple[Any, Any]:
        if t.number not in self.done:
            cfg = self.spec.with_params(t.params)
            trial = Trial(cfg)
            trial.run()
            self.done[t.number] = (cfg, trial.scorer)
        return self.done[t.number]


def front_spans(front: list, names: list[str], data: Any, runs: Runs, boot: int) -> None:
    """Per task metric, the front's best and worst trial on validation, paired by user on
    validation (out of fold) and on test: a trade-off a researcher can choose from when the
    span is more than twice the interval's half-width."""
    print("each task metric across the front (best minus worst front trial on validation):")
    for name, (task, direction) in TASKS.items():
        if name not in names:
            continue
        sign = 1 if direction == "maximize" else -1
        key = lambda t, n=name, s=sign: s * t.user_attrs["moo:metrics"]["val"][n]  # noqa: E731
        best, worst = max(front, key=key), min(front, key=key)
        if best is worst:
            print(f"  {name:18s} one front point")
            continue
        cells = []
        for part in ("val", "test"):
            preds = []
            for t in (best, worst):
                cfg, scorer = runs(t)
                preds.append(head_predictions(scorer, data.split, cfg, part))
            pairs = task_pairs_of(scorer, data, cfg, part, task)
            d, lo, hi = paired(task, pairs.users, pairs.y, preds[0][task], preds[1][task], boot)
            half = (hi - lo) / 2
            verdict = "spans" if abs(d) > 2 * half else "within noise"
            cells.append(f"{part} {d:+.4f} [{lo:+.4f}, {hi:+.4f}] ({verdict})")
        print(f"  {name:18s} trial {best.number} vs {worst.number}: " + "   ".join(cells))


def task_pairs_of(scorer: Any, data: Any, cfg: Any, part: str, task: str) -> Any:
    from moo_search.recommender.task_eval import task_predictions

    kw = {"negatives": cfg.eval.click_negatives, "seed": cfg.seed}
    return task_predictions(scorer, data.split, part, task, **kw)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", nargs="?", default="reports/business")
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--cold", action="store_true", help="new items: base config vs baselines")
    ap.add_argument("--spec", default="studies/business_cold.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    if args.cold:
        return cold(args.spec, args.seeds, args.boot)

    study = load_study(args.study)
    spec = load_spec(f"{args.study}/spec.yaml")
    names = [o.metric for o in spec.objectives]
    directions = [o.direction for o in spec.objectives]
    done = [
        t
        for t in study.trials
        if t.state.name == "COMPLETE" and "moo:derived_from" not in t.user_attrs
    ]
    F = np.array([t.values for t in done])
    front = [t for t, keep in zip(done, pareto_mask(F, directions)) if keep]
    print(f"{len(done)} fine-tunes, {len(front)} on the validation front")
    head = "trial  " + "  ".join(f"{n:>20s}" for n in names)
    print(head + "   (validation / test)")
    for t in sorted(front, key=lambda t: -t.values[0]):
        m = t.user_attrs["moo:metrics"]
        cells = [f"{m['val'][n]:.4f} / {m['test'][n]:.4f}" for n in names]
        print(f"{t.number:5d}  " + "  ".join(f"{c:>20s}" for c in cells))
    if "click_auc" in names and "conversion_auc" in names:
        ordered = sorted(front, key=lambda t: t.user_attrs["moo:metrics"]["val"]["click_auc"])
        print("trade-off between neighbouring front points (validation, by click AUC):")
        for a, b in itertools.pairwise(ordered):
            va, vb = a.user_attrs["moo:metrics"]["val"], b.user_attrs["moo:metrics"]["val"]
            d_click = vb["click_auc"] - va["click_auc"]
            d_conv = vb["conversion_auc"] - va["conversion_auc"]
            if d_click > 1e-9:
                print(
                    f"  trial {b.number} -> {a.number}: click AUC -{d_click:.4f}, conversion "
                    f"AUC {-d_conv:+.4f} ({-d_conv / d_click:+.2f} conversion per click given up)"
                )

    data = prepare_data(spec)
    runs = Runs(spec)
    front_spans(front, names, data, runs, args.boot)
    ctx = BaselineContext.of(spec, data)
    counts = count_task_predictions(ctx, ("test",))["test"]
    print("each task's best trial (on validation) against its count baseline, on test:")
    for name, (task, direction) in TASKS.items():
        if name not in names:
            continue
        pick = max if direction == "maximize" else min
        best = pick(done, key=lambda t: t.user_attrs["moo:metrics"]["val"][name])
        cfg, scorer = runs(best)
        mine = head_predictions(scorer, data.split, cfg, "test")[task]
        bare = head_predictions(without_text(scorer, data, cfg), data.split, cfg, "test")
        pairs, base = counts[task]
        d, lo, hi = paired(task, pairs.users, pairs.y, mine, base, args.boot)
        dt, tlo, thi = paired(task, pairs.users, pairs.y, mine, bare[task], args.boot)
        print(
            f"  {name:18s} trial {best.number:3d}: {metric(task, pairs.y, mine):.4f}  count "
            f"baseline {metric(task, pairs.y, base):.4f}  diff {d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            f"   without text {metric(task, pairs.y, bare[task]):.4f}: text adds "
            f"{dt:+.4f} [{tlo:+.4f}, {thi:+.4f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
