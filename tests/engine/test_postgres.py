"""PostgreSQL tier: several worker processes (the real CLI) on one study; a SIGKILLed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from ..conftest import REPO

pytestmark = pytest.mark.pg
PG = os.environ.get("MOO_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def pg_url():
    psycopg = pytest.importorskip("psycopg", reason="psycopg (3) is needed for the pg tier")
    try:
        conn = psycopg.connect(f"{PG}/postgres", connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable at {PG}: {e}")

    name = f"moo_test_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield f"{PG}/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def _spec_file(tmp_path, n_trials: int) -> str:
    spec = {
        "name": "pg-study",
        "objective": "tests.objectives:slow",
        "search_space": {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "minimize"},
            {"metric": "b", "direction": "minimize"},
        ],
        "driver": {
            "population": 4,
            "seed": 0,
            "heartbeat_interval": 1,
            "grace_period": 3,
            "reference_point": [2.5, 2.5],
        },
        "budget": {"n_trials": n_trials},
        "out_dir": str(tmp_path / "study"),
    }
    path = tmp_path / "pg.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _cli(args, tmp_path, **env):
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "MOO_TEST_MARKERS": str(tmp_path), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "moo_search.cli", *args],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_study(url: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            optuna.load_study(study_name="pg-study", storage=url)
            return
        except KeyError:
            time.sleep(0.3)
    raise AssertionError("the study was never created")


def _finish(procs, timeout=240):
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out)
    return outs


def test_four_workers_finish_exactly_the_budget(pg_url, tmp_path):
    spec = _spec_file(tmp_path, 24)
    first = _cli(["run", spec, "--storage", pg_url, "--no-report"], tmp_path, MOO_TEST_SLEEP="0.5")
    _wait_for_study(pg_url)
    others = [
        _cli(["worker", spec, "--storage", pg_url], tmp_path, MOO_TEST_SLEEP="0.5")
        for _ in range(3)
    ]
    outs = _finish([first, *others])
    assert all(p.returncode == 0 for p in [first, *others]), "\n".join(outs)
    study = optuna.load_study(study_name="pg-study", storage=pg_url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 24
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL))


@pytest.mark.parametrize("where", ["this-node", "another-node"])
def test_killed_worker_trial_is_failed_and_retried(pg_url, tmp_path, where):
    """A worker SIGKILLed mid-trial: on this node its pid is gone and the trial is failed at
    once; on another node (MOO_SEARCH_NODE_ID) only its heartbeat can tell. Either way the
    trial is failed with a reason and retried with the same parameters."""
    spec = _spec_file(tmp_path, 12)
    first = _cli(["run", spec, "--storage", pg_url, "--no-report"], tmp_path, MOO_TEST_SLEEP="1.5")
    _wait_for_study(pg_url)
    node = {"MOO_SEARCH_NODE_ID": "a-node-far-away"} if where == "another-node" else {}
    victim = _cli(["worker", spec, "--storage", pg_url], tmp_path, MOO_TEST_SLEEP="1.5", **node)
    marker = tmp_path / f"{victim.pid}.running"
    end = time.time() + 60
    while not marker.exists() and time.time() < end:
        time.sleep(0.05)
    assert marker.exists(), "the victim never started a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    out = _finish([first])[0]
    assert first.returncode == 0, out
    study = optuna.load_study(study_name="pg-study", storage=pg_url)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1, [t.state for t in study.trials]
    reason = failed[0].user_attrs.get("moo:fail_reason", "")
    if where == "this-node":
        assert reason.startswith(f"interrupted: its worker (pid {victim.pid}"), reason
    else:  # not the pid check: the stale heartbeat failed it, and says so
        assert reason.startswith("interrupted: no heartbeat for more than"), reason
    retried = [
        t
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
        == failed[0].number
    ]
    assert len(retried) == 1 and retried[0].params == failed[0].params
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 12


@pytest.mark.parametrize(
    "form",
    ["userinfo", "query", "slash", "encoded"],
)
def test_a_storage_password_never_leaves_the_process(pg_url, tmp_path, capsys, monkeypatch, form):
    """A password planted in the storage URL (trust auth ignores it), in each form SQLAlchemy
    accepts, appears in no output, page, spec.yaml, study or trial record, and no artifact."""
    from moo_search.cli import main

    from ..helpers import TINY

    secret = "plantedSecret42"
    url = {
        "userinfo": pg_url.replace("postgres@", f"postgres:{secret}@"),
        "query": f"{pg_url}?password={secret}",
        "slash": pg_url.replace("postgres@", f"postgres:{secret}/x@"),
        "encoded": pg_url.replace("postgres@", f"postgres:{secret}%2Fx@"),
    }[form]
    raw = {
        **TINY,
        "storage": url,
        "out_dir": str(tmp_path / "study"),
        "search_space": {"fusion.alpha": {"float": [0.2, 0.8]}},
        "budget": {"n_trials": 1},
        "train": {**TINY["train"], "max_steps": 3},
    }
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec_path)]) == 0
    assert main(["report", url, "--out", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    for p in tmp_path.rglob("*"):
        if p.is_file() and p != spec_path:  # the user's own spec holds it, of course
            assert secret.encode() not in p.read_bytes(), p
    study = optuna.load_study(study_name="tiny", storage=url)
    assert secret not in repr(study.user_attrs)
    for t in study.trials:
        assert secret not in repr(t.user_attrs)
    page = (tmp_path / "r.html").read_text()
    assert "--study-name tiny" in page
    assert ("password=***" if form == "query" else "postgres:***@") in page


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_early_stopping_over_postgresql(pg_url, backend, tmp_path):
    """Rung records and decisions go through PostgreSQL as through SQLite."""
    from moo_search.drivers import run_study
    from moo_search.study import ATTR, count_states

    from ..helpers import stepped_spec

    spec = stepped_spec(
        n_trials=5,
        backend=backend,
        out_dir=str(tmp_path),
        enqueue=[{"x": x} for x in (0.9, 0.8, 0.7, 0.01, 0.02, 0.6)],
        driver={"early_stopping": {"enabled": True, "eta": 2, "min_trials": 3}},
    )
    study = run_study(spec, storage=pg_url)
    assert count_states(study)["COMPLETE"] == 5
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all("successive halving" in t.user_attrs[ATTR.FAIL] for t in pruned)


def _soak_spec(tmp_path, backend: str, n_trials: int) -> str:
    path = _spec_file(tmp_path, n_trials)
    with open(path) as f:
        raw = yaml.safe_load(f)
    raw["driver"]["backend"] = backend
    if backend == "optuna":
        # random proposals: a parameter set seen twice can then only come from the workers
        # (two workers seeded alike, a slot run twice), not from NSGA-II cloning a parent
        raw["driver"]["algorithm"] = "random"
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    return path


def _soak_check(url: str, n_trials: int) -> dict[str, int]:
    study = optuna.load_study(study_name="pg-study", storage=url)
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    params = [tuple(sorted(t.params.items())) for t in done]
    slots = [t.user_attrs.get("moo:pymoo_slot") for t in done if "moo:pymoo_slot" in t.user_attrs]
    # pruned for a reason of the drivers: the budget met elsewhere, or a proposal repeating a
    # finished trial (not run); anything else pruned is junk
    known = ("budget already reached", "parameters again")
    junk = [
        t
        for t in trials
        if t.state == TrialState.PRUNED and not any(k in str(t.user_attrs) for k in known)
    ]
    return {
        "trials": len(trials),
        "complete": len(done),
        "duplicates": (len(params) - len(set(params))) + (len(slots) - len(set(slots))),
        "stuck": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        "junk": len(junk),
        "surplus_pruned": sum(t.state == TrialState.PRUNED for t in trials) - len(junk),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
    }


def _soak_run(spec: str, url: str, tmp_path, rng, seconds: float = 15):
    """8 processes (one `run`, seven `worker`s) with a sleeping objective; one picked at random
    is SIGKILLed and replaced by a new worker every second. -> (procs, kills, outputs)."""
    env = {"MOO_TEST_SLEEP": "0.4"}
    procs = [_cli(["run", spec, "--storage", url, "--no-report"], tmp_path, **env)]
    _wait_for_study(url)
    procs += [_cli(["worker", spec, "--storage", url], tmp_path, **env) for _ in range(7)]
    kills, end = 0, time.time() + seconds
    while time.time() < end:
        time.sleep(1.0)
        live = [i for i, p in enumerate(procs) if p.poll() is None]
        if not live:
            break
        i = rng.choice(live)
        procs[i].send_signal(signal.SIGKILL)
        procs[i].wait(timeout=10)
        kills += 1
        procs[i] = _cli(["worker", spec, "--storage", url], tmp_path, **env)
    return procs, kills, _finish(procs, timeout=300)


def test_soak_optuna_eight_workers_with_random_kills(pg_url, tmp_path):
    """8 worker processes, one killed (SIGKILL) and restarted every second for 15 s: the
    budget is exact, no parameter set is run twice, nothing is left RUNNING or WAITING."""
    import random

    n = 40
    spec = _soak_spec(tmp_path, "optuna", n)
    _, kills, _ = _soak_run(spec, pg_url, tmp_path, random.Random(0))
    got = _soak_check(pg_url, n)
    print(f"\nsoak optuna: workers 8, kills {kills}, {got}")
    assert kills >= 10
    assert got["complete"] == n and got["duplicates"] == 0
    assert got["stuck"] == 0 and got["junk"] == 0


def test_soak_pymoo_eight_workers_with_random_kills(pg_url, tmp_path):
    """The pymoo driver over 8 worker processes, one killed (SIGKILL) and restarted every
    second for 15 s: exact budget, every slot once, nothing stuck, no junk, and, since every
    worker replays the algorithm from the seed and the storage, exactly the search that one
    process makes alone."""
    import random

    from moo_search.drivers import run_study
    from moo_search.spec import load_spec

    n = 40
    spec = _soak_spec(tmp_path, "pymoo", n)
    procs, kills, outs = _soak_run(spec, pg_url, tmp_path, random.Random(1))
    got = _soak_check(pg_url, n)
    print(f"\nsoak pymoo: workers 8, kills {kills}, {got}")
    assert kills >= 10
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    assert got["complete"] == n and got["duplicates"] == 0
    assert got["stuck"] == 0 and got["junk"] == 0
    study = optuna.load_study(study_name="pg-study", storage=pg_url)
    # a generation's evaluations spread over the workers (how many pids get a turn depends
    # on how fast 8 processes start on a busy machine: 7 to 9 seen; never only one)
    pids: dict[str, set[int]] = {}
    for t in study.trials:
        if "moo:worker" not in t.user_attrs:
            # killed in the instant between taking its slot and recording its worker: failed
            # (and its slot retried), never complete (docs/how-to/hosts-and-clusters.md)
            assert t.state.name == "FAIL", t
            continue
        generation = str(t.user_attrs["moo:pymoo_slot"]).split(":")[0]
        pids.setdefault(generation, set()).add(t.user_attrs["moo:worker"]["pid"])
    print(
        f"soak pymoo: {len(set().union(*pids.values()))} worker pids ran trials, up to "
        f"{max(len(p) for p in pids.values())} in one generation"
    )
    assert len(set().union(*pids.values())) >= 4, pids
    assert max(len(p) for p in pids.values()) >= 2, pids
    os.environ["MOO_TEST_SLEEP"] = "0"
    try:
        alone = run_study(load_spec(spec), storage="memory://")
    finally:
        del os.environ["MOO_TEST_SLEEP"]

    def slots(s):
        done = s.get_trials(states=(TrialState.COMPLETE,))
        return {t.user_attrs["moo:pymoo_slot"]: t.params for t in done}

    assert slots(study) == slots(alone)
