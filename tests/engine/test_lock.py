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

from ..conftest import REPO
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


OPENER = """
import sys, optuna
from moo_search.study import open_storage
optuna.create_study(study_name="race", storage=open_storage(sys.argv[1]), load_if_exists=True)
"""


def test_processes_opening_a_new_database_together_all_succeed(tmp_path):
    """Each creates the new database's tables; the losers of that race open it again."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url],
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert len(optuna.get_all_study_summaries(open_storage(url))) == 1


def test_schema_race_is_retried_and_other_errors_are_not(tmp_path, monkeypatch):
    import sqlalchemy.exc

    from moo_search.errors import StorageError

    real = optuna.storages.RDBStorage
    calls = []

    def racing(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError(
                "CREATE TABLE studies", {}, Exception("table studies already exists")
            )
        return real(*a, **k)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert open_storage(url) is not None and len(calls) == 2

    def broken(*a, **k):
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(StorageError, match="disk I/O error"):
        open_storage(url)
