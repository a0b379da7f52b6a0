"""A study mirrored to MLflow costs the study nothing, whatever the tracking server does.

    python benchmarks/bench_mlflow.py [--trials 300] [--rounds 2]

Runs ``moo-search run studies/zdt1.yaml --n-trials N`` side by side, alternating, ``--rounds``
times each, with:

* no ``--mlflow`` (the yardstick);
* ``--mlflow http://127.0.0.1:9`` (connection refused: a server that is down);
* ``--mlflow http://127.0.0.1:PORT`` where PORT accepts connections and never answers;
* a stand-in MLflow REST server that refuses every call (403), and one that answers;

and prints each one's median wall time and its ratio to the yardstick, then how long a SIGTERM
takes to end a run whose server never answers (the study's Ctrl-C). Before the mirror synced
on a thread of its own, an unreachable server held every sync for MLflow's retry budget
(~4 minutes a request): a 12-trial study took 10 minutes for 3 trials.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._docs_figures import write_figure  # noqa: E402
from tests.mlflow_fake import FakeMlflow  # noqa: E402

ZDT1 = str(REPO / "studies" / "zdt1.yaml")


def _argv(db: Path, trials: int, uri: str | None) -> list[str]:
    argv = [sys.executable, "-m", "moo_search.cli", "run", ZDT1, "--no-report"]
    argv += ["--storage", f"sqlite:///{db}", "--n-trials", str(trials)]
    return argv + (["--mlflow", uri] if uri else [])


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    return env


def _once(tmp: Path, trials: int, uri: str | None) -> float:
    db = tmp / f"s{time.monotonic_ns()}.db"
    t0 = time.perf_counter()
    p = subprocess.run(_argv(db, trials, uri), capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"run failed ({uri}): {p.stderr[-2000:]}")
    return wall


def _sigterm_seconds(tmp: Path, uri: str) -> float:
    proc = subprocess.Popen(
        _argv(tmp / "term.db", 10**6, uri), stderr=subprocess.PIPE, text=True, env=_env()
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "complete," in line:
            break
    time.sleep(1.0)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=600)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    refusing, answering = FakeMlflow(refuse=True), FakeMlflow()
    servers = {
        "no --mlflow": None,
        "down (refused)": "http://127.0.0.1:9",
        "never answers": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "answers 403": f"http://127.0.0.1:{refusing.port}",
        "answers": f"http://127.0.0.1:{answering.port}",
    }
    walls: dict[str, list[float]] = {k: [] for k in servers}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for _ in range(args.rounds):
            for name, uri in servers.items():
                walls[name].append(_once(tmp, args.trials, uri))
        term = _sigterm_seconds(tmp, servers["never answers"])
    base = statistics.median(walls["no --mlflow"])
    lines = [
        f"zdt1, {args.trials} trials, median of {args.rounds} alternating runs",
        f"{'MLflow server':<18} {'wall s':>8} {'x no --mlflow':>14}",
    ]
    for name, w in walls.items():
        m = statistics.median(w)
        lines.append(f"{name:<18} {m:8.1f} {m / base:14.2f}")
    logged = sum("moo_search.trial" in r["tags"] for r in answering.runs.values())
    lines.append(f"runs logged by the answering server: {logged} child runs")
    lines.append(f"SIGTERM answered in {term:.2f} s while the server never answers")
    print("\n".join(lines))
    command = f"python benchmarks/bench_mlflow.py --trials {args.trials} --rounds {args.rounds}"
    print(f"written to {write_figure('mlflow-stall', command, lines)}")
    refusing.close()
    answering.close()
    silent.close()


if __name__ == "__main__":
    main()
