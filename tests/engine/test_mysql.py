"""MySQL/MariaDB by URL (pg tier: the database services of the machine)."""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.study import load_study

from ..helpers import custom_spec

pytestmark = pytest.mark.pg
MYSQL = os.environ.get("MOO_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture
def mysql_url():
    pymysql = pytest.importorskip("pymysql", reason="pymysql is needed for the MySQL test")
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
    except pymysql.err.OperationalError as e:
        pytest.skip(f"MySQL/MariaDB not reachable at 127.0.0.1:3306: {e}")
    name = f"moo_test_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield f"{MYSQL}/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


def test_study_on_mysql_runs_resumes_and_loads(mysql_url, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = custom_spec("sphere2", n_trials=8, storage=mysql_url, out_dir=str(tmp_path))
    run_study(spec, n_trials=3)
    study = run_study(spec)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 8
    again = load_study(mysql_url)
    # every trial is in the storage, numbered without gaps; besides the 8 run, only proposals
    # that repeated a finished trial (recorded PRUNED, not run)
    assert [t.number for t in again.trials] == list(range(len(again.trials)))
    skipped = [t for t in again.trials if t.state == TrialState.PRUNED]
    assert all("parameters again" in t.user_attrs["moo:fail_reason"] for t in skipped)
    assert len(again.trials) - len(skipped) == 8


def test_pymoo_study_on_mysql_publishes_under_its_lock(mysql_url, tmp_path):
    from moo_search.study import ATTR

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = custom_spec(
        "sphere2", n_trials=8, backend="pymoo", storage=mysql_url, out_dir=str(tmp_path)
    )
    study = run_study(spec)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs[ATTR.SLOT] for t in done) == [
        f"{g}:{j}" for g in (0, 1) for j in range(4)
    ]
