"""The study's MLflow mirror: URIs checked up front, credentials never printed nor sent in a
URL or body, a server that refuses or never answers costs no trial and no Ctrl-C, a study
identified by its id rather than its name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from moo_search.cli import main

from ..mlflow_fake import FakeMlflow

mlflow = pytest.importorskip("mlflow")

ZDT1 = str(Path(__file__).resolve().parents[2] / "studies" / "zdt1.yaml")
SECRET = "pw-S3CRET-x"
MLFLOW_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in MLFLOW_ENV:  # the mirror moves a URL's credentials into these
        monkeypatch.delenv(key, raising=False)


def _run(tmp_path: Path, uri: str, *extra: str, n: int = 60, env: dict | None = None):
    argv = [sys.executable, "-m", "moo_search.cli", "run", ZDT1, "--no-report"]
    argv += ["--storage", f"sqlite:///{tmp_path / 'study.db'}", "--n-trials", str(n)]
    argv += ["--mlflow", uri, *extra] if uri else list(extra)
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    for key in MLFLOW_ENV:
        if key not in (env or {}):
            full_env.pop(key, None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=full_env)


@pytest.fixture
def blackhole():
    """A port that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize("server", ["answering", "refusing", "unreachable"])
def test_a_password_in_the_url_is_never_printed_nor_sent_in_a_body(tmp_path, server):
    fake = FakeMlflow(refuse=server == "refusing")
    port = 9 if server == "unreachable" else fake.port
    try:
        p = _run(tmp_path, f"http://alice:{SECRET}@127.0.0.1:{port}/", n=40)
    finally:
        fake.close()
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert "View run" not in p.stdout  # MLflow's own URL lines are off
    sent = " ".join(r["path"] + r["body"] for r in fake.requests)
    assert SECRET not in sent
    assert SECRET.encode() not in (tmp_path / "study.db").read_bytes()  # nor in the record
    if server == "answering":
        children = [r for r in fake.runs.values() if "moo_search.trial" in r["tags"]]
        assert len(children) == 40
        auth = {r["headers"].get("Authorization", "") for r in fake.requests}
        assert auth and all(a.startswith("Basic ") for a in auth)  # moved, not dropped
    else:
        assert "could not log study 'zdt1'" in p.stderr
        assert p.stderr.count("could not log study") == 1  # one warning, not one per sync


def test_a_password_from_the_environment_is_never_printed(tmp_path):
    fake = FakeMlflow(refuse=True)
    try:
        env = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": SECRET}
        p = _run(tmp_path, f"http://127.0.0.1:{fake.port}", n=10, env=env)
    finally:
        fake.close()
    assert p.returncode == 0 and SECRET not in p.stdout + p.stderr
    assert "could not log study" in p.stderr


def test_a_database_uri_keeps_its_password_out_of_every_message(tmp_path):
    p = _run(tmp_path, f"postgresql://carol:{SECRET}@127.0.0.1:1/mlflow", n=10)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert "carol:***@127.0.0.1:1" in p.stderr


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("bogus://x", "no tracking store for the scheme 'bogus'"),
        ("mlruns", "file store"),
        ("file:///tmp/mlruns", "file store"),
        ("http://", "names no host"),
        ("sqlite:///{missing}/mlflow.db", "does not exist"),
        ("sqlite:///{readonly}/mlflow.db", "is not writable"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_a_tracking_uri_mlflow_cannot_use_is_refused_before_any_trial(tmp_path, uri, says):
    if os.geteuid() == 0 and "writable" in says:
        pytest.skip("root writes anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    uri = uri.format(missing=tmp_path / "nope", readonly=ro)
    try:
        p = _run(tmp_path, uri, n=5)
    finally:
        ro.chmod(0o755)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert f"--mlflow {uri!r}" in p.stderr and says in p.stderr
    assert not (tmp_path / "study.db").exists() or not optuna.get_all_study_summaries(
        f"sqlite:///{tmp_path / 'study.db'}"
    )


def test_the_specs_mlflow_is_named_when_it_is_bad(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(Path(ZDT1).read_text() + "mlflow: bogus://x\n")
    assert main(["run", str(spec), "--n-trials", "2", "--no-report"]) == 2
    assert "mlflow (the spec's) 'bogus://x'" in capsys.readouterr().err


def test_a_server_that_never_answers_holds_up_no_trial(tmp_path, blackhole):
    p = _run(tmp_path, f"http://127.0.0.1:{blackhole}", n=60)
    assert p.returncode == 0, p.stderr
    study = optuna.load_study(study_name="zdt1", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 60
    assert "gave up waiting" in p.stderr  # the last sync is not waited for past its bound


def test_sigterm_is_answered_while_mlflow_never_answers(tmp_path, blackhole):
    argv = [sys.executable, "-m", "moo_search.cli", "run", ZDT1, "--no-report"]
    argv += ["--storage", f"sqlite:///{tmp_path / 'study.db'}", "--n-trials", "100000"]
    argv += ["--mlflow", f"http://127.0.0.1:{blackhole}"]
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # wait for the first finished trial
        if "complete," in line:
            break
    # Keep reading: a zdt1 trial takes milliseconds, and a worker whose stderr pipe is full
    # blocks in write and cannot answer a signal (CI saw the test time out so once).
    tail: list[str] = []
    threading.Thread(target=lambda: tail.extend(proc.stderr or ()), daemon=True).start()
    time.sleep(1.0)  # a sync is under way, stuck on the silent server
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)  # it waited ~400 s on MLflow's retries before
    except subprocess.TimeoutExpired:  # where it is stuck: every thread's stack (SIGUSR1)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2.0)
        pytest.fail("no exit 60 s after SIGTERM; its stderr ends:\n" + "".join(tail[-80:]))
    finally:
        proc.kill()
    assert proc.returncode != 0, "".join(tail[-20:])


def test_two_studies_of_one_name_in_two_storages_get_a_parent_run_each(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for part in ("a", "b"):
        (tmp_path / part).mkdir()
        assert _run(tmp_path / part, uri, n=6).returncode == 0
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("moo-search/zdt1")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("moo_search.parent") == "true"]
    assert len(parents) == 2
    assert len({r.data.tags["moo_search.study_id"] for r in parents}) == 2
    for parent in parents:
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(kids) == 6
