"""Many workers through one gRPC storage proxy (`moo-search storage-proxy URL --port N`,
workers on `--storage grpc://HOST:PORT`): the exact budget, no configuration run twice; the
pymoo driver, which needs the database's own lock, is refused with the alternatives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

pytest.importorskip("grpc")

from ..helpers import sphere_spec_yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "moo-search"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy(tmp_path):
    port = _free_port()
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    proc = subprocess.Popen(
        [str(BIN), "storage-proxy", db, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"grpc://127.0.0.1:{port}", db
    proc.terminate()
    proc.wait(timeout=30)


def _run(tmp_path: Path, backend: str, storage: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "s.yaml").write_text(sphere_spec_yaml("sph", n_trials=30, backend=backend))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [str(BIN), "run", "s.yaml", "--storage", storage, "--no-report", *extra]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_workers_through_the_proxy_meet_the_exact_budget_and_repeat_nothing(tmp_path, proxy):
    url, db = proxy
    p = _run(tmp_path, "optuna", url, "--workers", "3")
    assert p.returncode == 0, p.stderr[-3000:]
    study = optuna.load_study(study_name="sph", storage=db)  # the database behind the proxy
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 30
    configs = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(configs)) == len(configs)
    # a worker joining later from "another host" finds the budget met and runs nothing more
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    w = subprocess.run(
        [str(BIN), "worker", "s.yaml", "--storage", url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert w.returncode == 0, w.stderr[-2000:]
    again = optuna.load_study(study_name="sph", storage=db)
    assert sum(t.state.name == "COMPLETE" for t in again.trials) == 30


def test_the_pymoo_driver_through_the_proxy_is_refused_naming_the_alternatives(tmp_path, proxy):
    p = _run(tmp_path, "pymoo", proxy[0])
    assert p.returncode != 0
    assert "driver.backend: optuna" in p.stderr and "Traceback" not in p.stderr


def test_a_proxy_that_is_not_there_is_named(tmp_path):
    port = _free_port()
    p = _run(tmp_path, "optuna", f"grpc://127.0.0.1:{port}")
    assert p.returncode != 0
    assert "no storage proxy answers there" in p.stderr and f"--port {port}" in p.stderr
