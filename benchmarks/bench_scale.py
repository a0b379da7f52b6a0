"""How a trial's cost grows with the catalog: one fine-tune per dataset, timed by part.

    python benchmarks/bench_scale.py [--only ml-100k,ml-1m,bx-10,bx-5,syn-100k] [--ref COMMIT]

One fine-tune of the same trial (``studies/ml1m.yaml``'s model, adapter and training: 45 steps
of 32 users, LoRA r=8 on MiniLM's top three layers) on MovieLens-100K, MovieLens-1M,
Book-Crossing at two k-cores and the synthetic source at 10^5 items and 5 x 10^4 users
(SANSA), each in a fresh process (so that its peak RSS is its own), with a fresh backbone
cache. Its wall time is split into:

* data: loading, splitting, rendering the texts (``prepare_data``);
* backbone: fitting the closed-form backbone once (EASE where it fits at a fixed lambda;
  SANSA beyond; tuning on validation multiplies this by the grid and is cached per study);
* training (the loop, its checkpoints included), encoding (catalog and user embeddings),
  evaluation (the kept scores, the task heads' fit and metrics, the plain lists: the score
  stage less its encoding, and the evaluate stage), variants (two re-ranked settings, drawn
  from the evaluation's ScoreBook; the users it scored again are printed);

and the peak RSS of each stage;

then the fitted exponent b of each part in time ~ (users x items)^b (items for the
backbone). A second table fits each backbone alone on each catalog (fit seconds and the peak
RSS added over the loaded data): dense EASE where it fits, SANSA, ItemKNN, ALS.

``--ref COMMIT`` also runs the MovieLens trials with the code of ``COMMIT`` (a git worktree
in a temporary directory), alternating with this code, to show that MovieLens trials are no
slower than before.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CATALOGS = {
    "ml-100k": {
        "data.dataset": "movielens-100k",
        "data.split.method": "chronological",
        "data.relevance_threshold": 4,
        "data.item_text": ["title", "genres"],
    },
    "ml-1m": {
        "data.dataset": "movielens-1m",
        "data.split.method": "chronological",
        "data.relevance_threshold": 4,
        "data.item_text": ["title", "genres"],
    },
    "bx-10": {"data.params.k_core": 10},
    "bx-5": {"data.params.k_core": 5},
    "syn-100k": {
        "data.dataset": "synthetic",
        "data.params": {
            "n_users": 50_000,
            "n_items": 100_000,
            "n_genres": 16,
            "interactions_per_user": 30,
        },
        "data.split.method": "chronological",
        "data.relevance_threshold": 4,
        "data.item_text": ["title", "genres"],
    },
}
"""Each catalog: overrides of ``studies/bookcrossing.yaml``'s data section."""

VARIANTS = [{"rerank.pop_penalty": 0.1}, {"rerank.pop_penalty": 0.2}]

CHILD = r"""
import json, os, resource, sys, time, tempfile
from pathlib import Path
spec_path, overrides = sys.argv[1], json.loads(sys.argv[2])
variants = json.loads(sys.argv[3])
import numpy as np
import moo_search.recommender.trial as trial_mod
from moo_search.spec import load_spec
from moo_search.recommender.prepare import prepare_data, collaborative_backbone
import moo_search.recommender.model.backbones as bb
from moo_search.recommender.inference import CatalogScorer

cache = Path(tempfile.mkdtemp(prefix="bench-scale-bb-"))
bb._cache_dir = lambda: cache  # a fresh backbone cache: the fit is timed
spec = load_spec(spec_path, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
from moo_search.recommender.memory import PeakRSS
parts, stage_peak = {}, {}
t0 = time.perf_counter()
with PeakRSS(0.05) as peak:
    data = prepare_data(spec)
stage_peak["data"] = round(peak.mib)
parts["data"] = time.perf_counter() - t0
n_users, n_items = data.split.n_users, data.split.n_items
t0 = time.perf_counter()
with PeakRSS(0.05) as peak:
    cf = collaborative_backbone(spec, data)
stage_peak["backbone"] = round(peak.mib)
parts["backbone"] = time.perf_counter() - t0
encoding = {"fit": 0.0, "score": 0.0}
stage = {"now": "", "seconds": {}}

enc = CatalogScorer.encode.__func__
def timed_encode(cls, *a, **k):
    t = time.perf_counter()
    try:
        return enc(cls, *a, **k)
    finally:
        encoding[stage["now"]] = encoding.get(stage["now"], 0.0) + time.perf_counter() - t
CatalogScorer.encode = classmethod(timed_encode)

class Timed(trial_mod.Trial):
    def run(self):
        self.begin()
        for name in self.STAGES:
            stage["now"], t = name, time.perf_counter()
            with PeakRSS(0.05) as peak:
                getattr(self, name)()
            stage["seconds"][name] = time.perf_counter() - t
            stage_peak[name] = round(peak.mib)
        self.done()
        return self.result

trial = Timed(spec, variants=variants)
trial.data = data
trial.prepare = lambda: None  # prepared above (timed as data)
res = trial.run()
sec = stage["seconds"]
parts["training"] = sec["fit"] - encoding.get("fit", 0.0)
parts["encoding"] = encoding.get("fit", 0.0) + encoding.get("score", 0.0)
parts["evaluation"] = sec["score"] - encoding.get("score", 0.0) + sec["evaluate"]
parts["variants"] = sec["variants"]
parts["other"] = sec["build"] + sec["save"]
print("RESULT " + json.dumps({
    "users": n_users, "items": n_items, "parts": parts,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ndcg@10": res.metrics["test"].get("ndcg@10"),
    "backbone": cf.name, "backbone_params": cf.params,
    "rescored": getattr(getattr(trial, "book", None), "rescored", None),
    "stage_peak_mb": stage_peak,
}))
"""

BACKBONE_CHILD = r"""
import json, sys, time
overrides, name = json.loads(sys.argv[2]), sys.argv[3]
import numpy as np
from moo_search.spec import load_spec
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.memory import PeakRSS
spec = load_spec(sys.argv[1], [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
data = prepare_data(spec)
x = data.split.matrix("train").astype(np.float64).tocsr()
before = PeakRSS.current() or 0.0
t0 = time.perf_counter()
with PeakRSS() as peak:
    if name == "EASE":
        from moo_search.recommender.model.backbones import ease_weights
        w = ease_weights(x, 200.0)
    elif name == "SANSA":
        from moo_search.recommender.model.sparse_weights import sansa_density, sansa_weights
        w = sansa_weights(x, 20.0, sansa_density(x.shape[1], None))
    elif name == "ItemKNN":
        from moo_search.recommender.model.backbones import SPARSE_FROM_ITEMS, itemknn_sparse, itemknn_weights
        w = itemknn_weights(x, 100) if x.shape[1] < SPARSE_FROM_ITEMS else itemknn_sparse(x, 100)
    elif name == "ALS":
        from moo_search.recommender.baselines.factors import _fit
        xb = x.astype(np.float32)
        xb.data[:] = 1.0
        w = _fit("ALS", xb, {"factors": 64, "regularization": 1.0, "alpha": 10.0}, 0)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": peak.mib - before}))
"""


def _child(code: str, args: list[str], pythonpath: str | None = None) -> dict | None:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    print(f"  (failed: {' | '.join(tail)})", file=sys.stderr)
    return None


def _overrides(name: str) -> dict:
    over = dict(CATALOGS[name])
    if name in ("bx-5", "syn-100k"):
        over["fusion.cf"] = "sansa"  # dense EASE would need ~29 GiB (bx-5), ~220 GiB here
        over["fusion.cf_params.l2"] = 20.0
    else:
        over["fusion.cf_params.lambda"] = 200.0
    # the ML-1M spec's trial (bookcrossing.yaml shares its training section)
    return over


def _exponent(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-3)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx if sxx else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(CATALOGS))
    ap.add_argument("--ref", default=None, help="a commit whose MovieLens trials to time too")
    ap.add_argument("--no-backbones", action="store_true")
    args = ap.parse_args()
    spec = str(ROOT / "studies" / "bookcrossing.yaml")
    names = [n for n in args.only.split(",") if n]
    variants = json.dumps(VARIANTS)
    rows: dict[str, dict] = {}
    for name in names:
        print(f"{name}: one fine-tune ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        got = _child(CHILD, [spec, json.dumps(_overrides(name)), variants])
        print(f"  {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
        if got:
            rows[name] = got
    parts = ["data", "backbone", "training", "encoding", "evaluation", "variants", "other"]
    print(
        f"\n{'catalog':9s} {'users':>7s} {'items':>7s} "
        + " ".join(f"{p:>10s}" for p in parts)
        + f" {'total':>8s} {'peak RSS':>9s} {'test ndcg@10':>12s}  backbone"
    )
    for name, r in rows.items():
        total = sum(r["parts"].values())
        print(
            f"{name:9s} {r['users']:7d} {r['items']:7d} "
            + " ".join(f"{r['parts'][p]:9.1f}s" for p in parts)
            + f" {total:7.0f}s {r['peak_rss_mb'] / 1024:8.2f}G {r['ndcg@10']:12.4f}  {r['backbone']}"
            + (
                f"  (users scored again for a re-ranked list: {r['rescored']})"
                if r.get("rescored")
                else ""
            )
        )
    for name, r in rows.items():  # where each peak is
        print(f"peak RSS by stage, {name} (MiB): {json.dumps(r.get('stage_peak_mb', {}))}")
    if len(rows) >= 2:
        ui = [r["users"] * r["items"] for r in rows.values()]
        items = [r["items"] for r in rows.values()]
        exps = []
        for p in parts:
            x = items if p == "backbone" else ui
            exps.append(f"{p} {_exponent(x, [r['parts'][p] for r in rows.values()]):.2f}")
        both = [r["parts"]["evaluation"] + r["parts"]["variants"] for r in rows.values()]
        exps.append(f"evaluation+variants {_exponent(ui, both):.2f}")
        print("fitted exponent b, time ~ (users x items)^b (backbone: items^b): " + ", ".join(exps))
        print("(the backbone changes from dense EASE to SANSA on bx-5: its exponent spans both)")
    if args.ref:
        _compare(args.ref, spec, variants)
    if not args.no_backbones:
        _backbones(names, spec)
    return 0


def _compare(ref: str, spec: str, variants: str) -> None:
    tree = Path(tempfile.mkdtemp(prefix="bench-scale-ref-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        print(f"\nMovieLens trials, this code vs {ref[:10]} (alternated, best of 2):")
        for name in ("ml-100k", "ml-1m"):
            best: dict[str, float] = {}
            ev: dict[str, float] = {}  # evaluation + variants, best of the rounds
            ndcg: dict[str, float] = {}
            for _ in range(2):
                for label, path in (("now", str(ROOT)), ("ref", str(tree))):
                    r = _child(CHILD, [spec, json.dumps(_overrides(name)), variants], path)
                    if r:
                        total = sum(r["parts"].values()) - r["parts"]["data"]
                        best[label] = min(best.get(label, math.inf), total)
                        both = r["parts"]["evaluation"] + r["parts"]["variants"]
                        ev[label] = min(ev.get(label, math.inf), both)
                        ndcg[label] = r["ndcg@10"]
            if len(best) == 2:
                same = "the same" if ndcg["now"] == ndcg["ref"] else "DIFFERENT"
                print(
                    f"  {name}: {best['now']:.1f}s now, {best['ref']:.1f}s before "
                    f"(x{best['ref'] / best['now']:.2f}; data loading excluded); evaluation + "
                    f"variants {ev['now']:.1f}s vs {ev['ref']:.1f}s; test ndcg@10 "
                    f"{ndcg['now']:.6f} vs {ndcg['ref']:.6f} ({same})",
                    flush=True,
                )
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True
        )


def _backbones(names: list[str], spec: str) -> None:
    print("\nbackbone fits alone (seconds / peak RSS added over the loaded data):")
    kinds = ["EASE", "SANSA", "ItemKNN", "ALS"]
    print(f"{'catalog':9s} " + " ".join(f"{k:>18s}" for k in kinds))
    for name in names:
        cells = []
        for kind in kinds:
            if kind == "EASE" and name in ("bx-5", "syn-100k"):
                cells.append(f"{'refused (dense)':>18s}")
                continue
            r = _child(BACKBONE_CHILD, [spec, json.dumps(CATALOGS[name]), kind])
            cells.append(
                f"{r['seconds']:8.1f}s {r['rss_mb'] / 1024:6.2f}G" if r else f"{'failed':>18s}"
            )
        print(f"{name:9s} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
