"""A served bundle under load: MLflow's scoring server against the same model in-process.

    python benchmarks/bench_serve.py [--bundle DIR] [--requests 300] [--seconds 20]
                                     [--cold-spec studies/cold_ml100k.yaml]

Without ``--bundle`` it runs one fine-tune of ``studies/quickstart.yaml`` (its first trial)
into a temporary directory and exports it. Then, in one run:

* load time of ``load_exported`` in a fresh process (imports included), with the text tower's
  embeddings shipped in the bundle and without them (the catalog re-encoded), alternated;
* ``mlflow models serve``: cold start (process start to the first answer), latency
  p50/p95/p99 of single-user requests, throughput at 1, 4 and 16 concurrent clients
  (bounded by ``--requests`` per level and ``--seconds``), the server's peak RSS;
* the same requests through ``load_exported`` in this process (the server's overhead).

With ``--cold-spec`` (an item-cold spec) it also runs that spec's first trial, exports it (the
bundle holds only the warm items), adds the test part's held-out items with ``add_items``
and prints the served ``cold_item/`` metrics beside the trial's offline ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from moo_search.recommender.export.pyfunc import serve_command

REPO = Path(__file__).resolve().parents[1]
LOAD = "import sys, time; t=time.perf_counter(); from moo_search import load_exported; r=load_exported(sys.argv[1]); r.recommend(r.user_ids[0], 10); print(time.perf_counter()-t)"


def make_bundle(work: Path) -> Path:
    from moo_search import export_trial, load_spec
    from moo_search.drivers import run_study

    spec = load_spec(REPO / "studies" / "quickstart.yaml")
    spec = spec.with_params(
        {
            "out_dir": str(work / "study"),
            "storage": f"sqlite:///{work / 'study' / 'study.db'}",
            "budget.n_trials": 1,
        }
    )
    print("one quickstart fine-tune (about a minute) ...", file=sys.stderr)
    run_study(spec)
    return export_trial(work / "study", out=work / "bundle", select="knee")


def cold_check(spec_path: Path, work: Path) -> None:
    """Held-out items added at serve time against the trial's offline cold_item metrics."""
    from moo_search import export_trial, load_exported, load_spec
    from moo_search.drivers import run_study
    from moo_search.recommender.metrics._context import cold_item_metrics
    from moo_search.recommender.prepare import prepare_data

    spec = load_spec(spec_path)
    spec = spec.with_params(
        {
            "out_dir": str(work / "cold"),
            "storage": f"sqlite:///{work / 'cold' / 'study.db'}",
            "budget.n_trials": 1,
        }
    )
    print(f"one fine-tune of {spec_path} ...", file=sys.stderr)
    run_study(spec)
    bundle = export_trial(work / "cold", out=work / "cold-bundle", trial=0)
    data = prepare_data(spec)
    split, ds = data.split, data.ds
    rec = load_exported(bundle)
    items, _ = split.cold_part("test")
    records = ds.items.iloc[items].to_dict("records")
    t = time.perf_counter()
    rec.add_items([{"id": str(ds.item_ids[i]), **r} for i, r in zip(items, records)])
    added = time.perf_counter() - t
    relevant = split.cold_matrix("test", relevant_only=True)
    users = np.flatnonzero(np.asarray(relevant.sum(1)).ravel() > 0)
    index = {str(x): i for i, x in enumerate(ds.item_ids)}
    k = 20
    lists = np.array(
        [[index[x] for x in rec.rank(str(ds.user_ids[u]), k, only_new=True)[0]] for u in users]
    )
    offline = json.loads((bundle / "metrics.json").read_text())["metrics"]["test"]
    print(
        f"new items at serve time ({spec_path.name}): {len(rec.item_ids)} items in the bundle, "
        f"{len(items)} held-out test items added in {added:.2f} s, {len(users)} users"
    )
    for kk in (10, 20):
        served = cold_item_metrics(lists[:, :kk], users, relevant, kk)
        for name in (f"cold_item/recall@{kk}", f"cold_item/ndcg@{kk}"):
            print(f"  {name:22s} served {served[name]:.4f}   offline {offline[name]:.4f}")


def load_seconds(bundle: Path) -> float:
    """Process start to the first list, in a fresh interpreter."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(bundle)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if out.returncode != 0:
        raise SystemExit(f"loading {bundle} failed:\n{out.stderr[-3000:]}")
    float(out.stdout.strip().splitlines()[-1])  # it loaded
    return time.perf_counter() - t


def without_embeddings(bundle: Path, work: Path) -> Path:
    from moo_search.export._files import MANIFEST, seal
    from moo_search.recommender.export._load import EMBEDDINGS

    copy = work / "no-embeddings"
    shutil.copytree(bundle, copy)
    (copy / EMBEDDINGS).unlink()
    manifest = json.loads((copy / MANIFEST).read_text())
    seal(copy, manifest)
    return copy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def tree_peak_rss_mb(pid: int) -> float:
    """The largest VmHWM among ``pid`` and its descendants (the uvicorn worker)."""
    pids, peak = [pid], 0.0
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except OSError:
            pass
    return peak


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return " / ".join(f"{np.percentile(ms, q):.1f}" for q in (50, 95, 99))


def throughput(call, users: list[str], clients: int, n: int, budget_s: float) -> float:
    lock, done = threading.Lock(), [0]
    deadline = time.perf_counter() + budget_s

    def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            with lock:
                if done[0] >= n:
                    return
                done[0] += 1
            call(users[i % len(users)])
            i += clients

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return done[0] / (time.perf_counter() - t)


def measure(name: str, call, users: list[str], args: argparse.Namespace) -> tuple:
    """(name, latency percentiles of sequential single-user calls, their count, req/s at
    1, 4 and 16 concurrent clients)."""
    for u in users[:20]:  # warm-up
        call(u)
    lat: list[float] = []
    end = time.perf_counter() + args.seconds
    for i in range(args.requests):
        if time.perf_counter() > end:
            break
        t = time.perf_counter()
        call(users[i % len(users)])
        lat.append(time.perf_counter() - t)
    rates = [throughput(call, users, c, args.requests, args.seconds) for c in (1, 4, 16)]
    return name, percentiles(lat), len(lat), rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=300, help="per measurement")
    ap.add_argument("--seconds", type=float, default=20.0, help="at most, per measurement")
    ap.add_argument("--load-reps", type=int, default=2)
    ap.add_argument("--cold-spec", type=Path, default=None, help="an item-cold study spec")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        if args.cold_spec is not None:
            cold_check(args.cold_spec, work)
        bundle = args.bundle or make_bundle(work)
        bare = without_embeddings(bundle, work)
        shipped, encoded = [], []
        for _ in range(args.load_reps):  # alternated: the machine's drift hits both
            shipped.append(load_seconds(bundle))
            encoded.append(load_seconds(bare))
        print(
            f"load_exported, process start to first list: {min(encoded):.2f} s re-encoding "
            f"the catalog, {min(shipped):.2f} s with the shipped embeddings "
            f"(x{min(encoded) / min(shipped):.2f}; best of {args.load_reps})"
        )

        from moo_search import load_exported

        rec = load_exported(bundle)
        users = list(rec.user_ids)

        def local(u: str) -> None:
            rec.recommend(u, 10)

        rows = [measure("load_exported", local, users, args)]  # before the server starts
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv, env = serve_command(bundle, port)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            body = json.dumps({"dataframe_records": [{"user": users[0], "k": 10}]}).encode()
            while True:
                try:
                    if post(f"{base}/invocations", body) == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.perf_counter() - t0 > 180:
                    raise SystemExit("the scoring server did not answer in 180 s")
                time.sleep(0.05)
            cold = time.perf_counter() - t0

            def served(u: str) -> None:
                b = json.dumps({"dataframe_records": [{"user": u, "k": 10}]}).encode()
                if post(f"{base}/invocations", b) != 200:
                    raise RuntimeError(f"request for user {u} failed")

            rows.insert(0, measure("mlflow models serve", served, users, args))
            peak = tree_peak_rss_mb(proc.pid)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)

        print(f"scoring server cold start (process start to first answer): {cold:.2f} s")
        print(f"scoring server peak RSS: {peak:.0f} MiB")
        print(f"{'':22s} {'p50 / p95 / p99 ms':>22s} {'n':>5s}  req/s at 1 / 4 / 16 clients")
        for name, pct, n, rates in rows:
            print(f"{name:22s} {pct:>22s} {n:5d}  " + " / ".join(f"{r:.0f}" for r in rates))
        (_, srv, _, _srv_rates), (_, loc, _, _loc_rates) = rows
        print(
            f"the server's overhead over the in-process call: p50 {srv.split(' / ')[0]} vs "
            f"{loc.split(' / ')[0]} ms (HTTP, JSON, pandas and MLflow's schema check per "
            "request; one uvicorn worker, so clients beyond the 2 cores queue)"
        )
        print(
            f"catalog {len(rec.item_ids)} items, {len(users)} users, k=10, "
            f"{os.cpu_count()} CPUs; the server runs one uvicorn worker"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
