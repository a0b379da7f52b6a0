"""The study lock: exclusive across processes, and released when its holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest

from moo_search.study import open_storage, study_lock

from .conftest import REPO
from .test_mysql import mysql_url  # noqa: F401  (fixtures)
from .test_postgres import pg_url  # noqa: F401

HOLDER = """
import sys, time, pathlib, optuna
from moo_search.study import open_storage, study_lock
url, held, release = sys.argv[1:4]
study = optuna.load_study(study_name="lock-test", storage=open_storage(url))
with study_lock(study):
    pathlib.Path(held).touch()
    while not pathlib.Path(release).exists():
        time.sleep(0.05)
"""


def _holder(url: str, held, release) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(held), str(release)],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def _wait_file(path, proc, timeout: float = 60) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "the lock holder exited"
        assert time.time() < end, "the lock holder never took the lock"
        time.sleep(0.05)


def _take_in_thread(study) -> threading.Event:
    got = threading.Event()

    def take() -> None:
        with study_lock(study):
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got


def _check_lock(url: str, tmp_path) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="lock-test", storage=open_storage(url))
    held, release = tmp_path / "held", tmp_path / "release"
    holder = _holder(url, held, release)
    _wait_file(held, holder)
    got = _take_in_thread(study)
    assert not got.wait(1.0), "took the lock while another process held it"
    release.touch()
    assert got.wait(30), "never got the lock after its holder released it"
    holder.wait(timeout=30)

    held2 = tmp_path / "held2"
    killed = _holder(url, held2, tmp_path / "never")
    _wait_file(held2, killed)
    got2 = _take_in_thread(study)
    assert not got2.wait(0.5)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    assert got2.wait(30), "a SIGKILLed holder left the study locked"


def test_study_lock_on_sqlite(tmp_path):
    _check_lock(f"sqlite:///{tmp_path}/s.db", tmp_path)


@pytest.mark.pg
def test_study_lock_on_postgresql(pg_url, tmp_path):  # noqa: F811
    _check_lock(pg_url, tmp_path)


@pytest.mark.pg
def test_study_lock_on_mysql(mysql_url, tmp_path):  # noqa: F811
    _check_lock(mysql_url, tmp_path)
