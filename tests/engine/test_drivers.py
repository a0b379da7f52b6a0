"""Drivers: exact budgets, resume, failures, records, and equivalence with the bare libraries."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.drivers._pymoo import decode, encode_bounds
from moo_search.errors import MooSearchError
from moo_search.spec import Dimension
from moo_search.study import ATTR, STUDY_ATTR, load_study

from ..helpers import custom_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
BACKENDS = ["optuna", "pymoo"]


def _numbers(study, state=TrialState.COMPLETE):
    return [t.number for t in study.get_trials(states=(state,))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_runs_exactly_the_budget_and_records_everything(backend, tmp_path):
    spec = custom_spec("sphere2", n_trials=11, backend=backend, out_dir=str(tmp_path))
    study = run_study(spec)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 11
    t = done[0]
    assert set(t.params) == {"x", "y"}
    assert t.user_attrs[ATTR.METRICS]["val"]["a"] == pytest.approx(t.values[0])
    assert t.user_attrs[ATTR.PARAMS] == t.params
    assert study.user_attrs[STUDY_ATTR.REFERENCE] == [2.5, 2.5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_continues_to_the_budget_without_duplicates(backend, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    spec = custom_spec("sphere2", n_trials=14, backend=backend, storage=url, out_dir=str(tmp_path))
    run_study(spec, n_trials=6)  # "interrupted" after 6
    first = load_study(url)
    assert len(_numbers(first)) == 6
    before = {t.number: t.params for t in first.get_trials(states=(TrialState.COMPLETE,))}
    study = run_study(spec)
    numbers = _numbers(study)
    assert len(numbers) == 14 and len(set(numbers)) == 14
    after = {t.number: t.params for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[n] == p for n, p in before.items())  # finished trials untouched
    # nothing re-run, nothing extra: a proposal that repeats a finished trial is recorded
    # PRUNED with the reason, not run
    skipped = study.get_trials(states=(TrialState.PRUNED,))
    assert all("parameters again" in t.user_attrs[ATTR.FAIL] for t in skipped)
    assert len(study.trials) - len(skipped) == 14
    run_study(spec)  # already at budget: a no-op
    assert len(load_study(url).trials) == len(study.trials)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_marks_the_running_trial_and_a_later_run_resumes(backend, tmp_path, monkeypatch):
    flag = tmp_path / "interrupt"
    flag.write_text("4")  # the 5th evaluation raises KeyboardInterrupt
    monkeypatch.setenv("MOO_TEST_INTERRUPT", str(flag))
    url = f"sqlite:///{tmp_path}/s.db"
    spec = custom_spec(
        "interrupt_at", n_trials=10, backend=backend, storage=url, out_dir=str(tmp_path)
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(spec)
    study = load_study(url)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and "interrupted" in failed[0].user_attrs[ATTR.FAIL]
    assert len(_numbers(study)) == 4
    study = run_study(spec)
    assert len(_numbers(study)) == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_trial_is_recorded_and_the_study_goes_on(backend, tmp_path):
    spec = custom_spec(
        "flaky",
        n_trials=12,
        backend=backend,
        out_dir=str(tmp_path),
        budget={"n_trials": 12, "max_failures": 50},
    )
    study = run_study(spec)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed, "expected some x > 0.7"
    assert all("out of the supported range" in t.user_attrs[ATTR.FAIL] for t in failed)
    assert len(_numbers(study)) == 12


def test_too_many_failures_stop_the_run_with_a_message(tmp_path):
    from moo_search import MooSearchError

    spec = custom_spec(
        "flaky",
        n_trials=50,
        out_dir=str(tmp_path),
        budget={"n_trials": 50, "max_failures": 2},
        search_space={"x": {"float": [0.8, 1.0]}, "y": {"float": [0.0, 1.0]}},
    )
    with pytest.raises(MooSearchError, match="max_failures = 2"):
        run_study(spec)


def test_pymoo_study_opens_with_plain_optuna(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    spec = custom_spec("sphere2", n_trials=9, backend="pymoo", storage=url, out_dir=str(tmp_path))
    ours = run_study(spec)
    plain = optuna.load_study(study_name="custom", storage=url)
    assert [(t.number, t.params, t.values) for t in plain.trials] == [
        (t.number, t.params, t.values) for t in ours.trials
    ]
    assert all(ATTR.GENERATION in t.user_attrs for t in plain.trials)
    assert {t.user_attrs[ATTR.GENERATION] for t in plain.trials} == {0, 1, 2}  # population 4
    assert len(plain.best_trials) >= 1


def test_local_workers_on_sqlite_finish_exactly_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_TEST_SLEEP", "0.2")
    url = f"sqlite:///{tmp_path}/w.db"
    spec = custom_spec("slow", n_trials=16, storage=url, out_dir=str(tmp_path))
    run_study(spec, workers=3)
    study = load_study(url)
    numbers = _numbers(study)
    assert len(numbers) == 16 and len(set(numbers)) == 16
    assert not study.get_trials(states=(TrialState.FAIL, TrialState.RUNNING))


def test_mixed_space_encoding_round_trips():
    space = {
        "lr": Dimension(kind="float", low=1e-5, high=1e-2, log=True),
        "r": Dimension(kind="int", low=2, high=32),
        "t": Dimension(kind="categorical", choices=["lora", "dora", "ia3"]),
        "a": Dimension(kind="float", low=0.0, high=1.0),
    }
    lo, hi = encode_bounds(space)
    p_lo, p_hi = decode(lo, space), decode(hi, space)
    assert p_lo == {"lr": pytest.approx(1e-5), "r": 2, "t": "lora", "a": 0.0}
    assert p_hi == {"lr": pytest.approx(1e-2), "r": 32, "t": "ia3", "a": 1.0}
    counts = {c: 0 for c in ["lora", "dora", "ia3"]}
    import numpy as np

    for v in np.linspace(lo[2], hi[2], 300):
        counts[decode(np.array([lo[0], lo[1], v, 0.0]), space)["t"]] += 1
    assert min(counts.values()) > 90  # categoricals get equal shares of the real line


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "tpe", "random", "gp"])
def test_every_optuna_algorithm_runs_a_constrained_study(algorithm, tmp_path):
    spec = custom_spec(
        "sphere2",
        n_trials=10,
        out_dir=str(tmp_path),
        driver={"backend": "optuna", "algorithm": algorithm, "population": 4, "seed": 0},
        constraints=["a <= 1.5"],
    )
    study = run_study(spec)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 10
    for t in done:  # constraints reach Optuna (set_constraint on 5.x, constraints_func on 4.x)
        assert t.user_attrs[ATTR.CONSTRAINTS] == [pytest.approx(t.values[0] - 1.5)]
    feasible_front = study.best_trials
    assert feasible_front and all(t.values[0] <= 1.5 for t in feasible_front)


def test_surplus_ask_is_pruned_not_completed(tmp_path):
    """If another worker already filled the budget, a trial asked in the race window is
    pruned with a reason, never completed."""
    spec = custom_spec("sphere2", n_trials=3, out_dir=str(tmp_path))
    study = run_study(spec)
    from moo_search.drivers._context import StudyContext
    from moo_search.drivers._runner import TrialRunner
    from moo_search.objective import objective_for

    ctx = StudyContext(
        spec=spec,
        study=study,
        storage_url="memory://",
        study_dir=tmp_path,
        evaluate=objective_for(spec.objective).evaluator(spec),
        space=objective_for(spec.objective).search_space(spec),
        n_trials=3,
    )
    study.optimize(TrialRunner(ctx), n_trials=1)
    last = study.trials[-1]
    assert (
        last.state == TrialState.PRUNED and "budget already reached" in last.user_attrs[ATTR.FAIL]
    )
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


def test_optuna_dashboard_shows_the_objectives_by_name(tmp_path):
    """optuna-dashboard's own API (its WSGI app) reads the metric names the study recorded."""
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    optuna_dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard")
    url = f"sqlite:///{tmp_path}/s.db"
    spec = custom_spec("sphere2", n_trials=3, storage=url, out_dir=str(tmp_path))
    study = run_study(spec)
    assert study.metric_names == ["a", "b"]
    app = optuna_dashboard.wsgi(optuna.storages.RDBStorage(url))
    environ = {"PATH_INFO": f"/api/studies/{study._study_id}", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO()
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    assert status[0].startswith("200"), status
    assert json.loads(body)["objective_names"] == ["a", "b"]


def _slot_params(study) -> dict[str, dict]:
    done = study.get_trials(states=(TrialState.COMPLETE,))
    slots = [t.user_attrs[ATTR.SLOT] for t in done if ATTR.SLOT in t.user_attrs]
    assert len(slots) == len(set(slots)), "a slot was run twice"
    return {t.user_attrs[ATTR.SLOT]: t.params for t in done if ATTR.SLOT in t.user_attrs}


def test_two_pymoo_workers_replay_exactly_the_search_of_one(tmp_path, monkeypatch):
    """Two worker processes share the generations (each slot runs once, on whichever is free)
    and, replaying the algorithm from the seed and the storage, search exactly what one
    process searches: the same parameters in every slot."""
    from moo_search.study import count_states

    monkeypatch.setenv("MOO_TEST_SLEEP", "0.3")
    alone = run_study(custom_spec("slow", n_trials=12, backend="pymoo", out_dir=str(tmp_path)))
    url = f"sqlite:///{tmp_path}/two.db"
    spec = custom_spec("slow", n_trials=12, backend="pymoo", storage=url, out_dir=str(tmp_path))
    study = run_study(spec, workers=2)
    counts = count_states(study)
    assert counts["COMPLETE"] == 12
    assert counts["FAIL"] == counts["PRUNED"] == counts["RUNNING"] == counts["WAITING"] == 0
    assert _slot_params(study) == _slot_params(alone)
    pids = {t.user_attrs[ATTR.WORKER]["pid"] for t in study.trials}
    assert len(pids) == 2, "both workers should have run slots"


def test_pymoo_resume_after_a_sigkill_reruns_the_dead_slot_at_once(tmp_path):
    """A pymoo run SIGKILLed mid-slot and run again: the dead slot is failed at once (its
    worker's pid is gone; no waiting for the heartbeat), run again with the same parameters,
    and the budget is exact with nothing left RUNNING or WAITING."""
    import signal
    import subprocess
    import sys

    import yaml

    from moo_search.study import count_states

    from ..conftest import REPO

    url = f"sqlite:///{tmp_path}/s.db"
    spec = custom_spec("slow", n_trials=10, backend="pymoo", storage=url, out_dir=str(tmp_path))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(redact=False)))
    env = {
        **__import__("os").environ,
        "PYTHONPATH": str(REPO),
        "MOO_TEST_MARKERS": str(tmp_path),
        "MOO_TEST_SLEEP": "1.5",  # a window wide enough to kill it mid-slot on a busy machine
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "moo_search.cli", "run", str(path), "--no-report"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = tmp_path / f"{proc.pid}.running"
    import time

    end = time.time() + 180
    while time.time() < end and proc.poll() is None:
        if marker.exists() and len(load_study(url).trials) >= 6:
            break  # in its 6th slot or later: generation 1, mid-evaluation
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed mid-slot"
    assert marker.exists(), "the run never started a slot"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    study = run_study(spec)
    counts = count_states(study)
    assert counts["COMPLETE"] == 10
    assert counts["RUNNING"] == counts["WAITING"] == counts["PRUNED"] == 0
    (dead,) = study.get_trials(states=(TrialState.FAIL,))
    assert f"its worker (pid {proc.pid}" in dead.user_attrs[ATTR.FAIL]
    assert _slot_params(study)[dead.user_attrs[ATTR.SLOT]] == dead.params


def test_trials_of_gone_workers_are_failed_and_only_theirs(tmp_path):
    import os
    import socket

    from moo_search.drivers._workers import fail_gone_workers, worker_record
    from moo_search.study import open_storage

    store = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_interval=None)
    study = optuna.create_study(storage=store)
    host = socket.gethostname()
    dead_pid = 2**22 + 7
    alive = study.ask()  # another live process of this host (our parent) runs it
    study.set_user_attr(STUDY_ATTR.DRIVER_OWNER, {"host": host, "pid": dead_pid})
    alive.set_user_attr(ATTR.WORKER, {**worker_record(alive.number), "pid": os.getppid()})
    dead = study.ask()
    dead.set_user_attr(ATTR.WORKER, {**worker_record(dead.number), "pid": dead_pid})
    copied = study.ask()  # a retry's copy of a dead worker's record: not this trial's own
    copied.set_user_attr(ATTR.WORKER, {**worker_record(dead.number), "pid": dead_pid})
    legacy = study.ask()  # a slot of the old one-process pymoo driver, whose process is gone
    legacy.set_user_attr(ATTR.SLOT, "0:0")
    elsewhere = study.ask()
    elsewhere.set_user_attr(ATTR.WORKER, {**worker_record(4), "node": "another-node", "pid": 1})
    assert fail_gone_workers(study) == 2
    state = {t.number: t.state for t in study.trials}
    assert state[dead.number] == state[legacy.number] == TrialState.FAIL
    assert {state[t.number] for t in (alive, copied, elsewhere)} == {TrialState.RUNNING}
    reason = study.trials[dead.number].user_attrs[ATTR.FAIL]
    assert reason.startswith("interrupted: its worker") and str(dead_pid) in reason
    # a worker that died between taking a trial and recording itself left no record of its
    # own (none, or the one its retry copied) and no heartbeat: failed once it is too old
    unclaimed = study.ask()
    assert fail_gone_workers(study, grace_period=3600) == 0
    assert fail_gone_workers(study, grace_period=0) == 2
    state = {t.number: t.state for t in study.trials}
    assert state[copied.number] == state[unclaimed.number] == TrialState.FAIL
    assert {state[t.number] for t in (alive, elsewhere)} == {TrialState.RUNNING}
    reason = study.trials[unclaimed.number].user_attrs[ATTR.FAIL]
    assert reason.startswith("interrupted: its worker stopped before recording itself"), reason


_DIE_BEFORE_CLAIM = """
import os, sys
import moo_search.drivers._pymoo as pymoo_driver
from moo_search.drivers import run_study
from moo_search.spec import load_spec

claim = pymoo_driver.claim
def die_at_the_sixth(study, trial_id, number):
    if number == 5:
        os._exit(9)  # killed in the instant after taking the slot, before recording itself
    claim(study, trial_id, number)
pymoo_driver.claim = die_at_the_sixth
run_study(load_spec(sys.argv[1]))
"""


def test_pymoo_worker_killed_between_taking_a_slot_and_recording_itself(tmp_path):
    """The slot it took is RUNNING with no worker record and no heartbeat, so neither the pid
    check nor Optuna's stale check can see it; once older than the grace period it is failed
    and run again, instead of every worker waiting for it for ever (the CI soak's hang)."""
    import subprocess
    import sys

    import yaml

    from moo_search.study import count_states

    from ..conftest import REPO

    url = f"sqlite:///{tmp_path}/s.db"
    driver = {
        "backend": "pymoo",
        "algorithm": "nsga2",
        "population": 4,
        "seed": 1,
        "reference_point": [2.5, 2.5],
        "heartbeat_interval": 1,
        "grace_period": 2,
    }
    spec = custom_spec("sphere2", n_trials=8, storage=url, out_dir=str(tmp_path), driver=driver)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(redact=False)))
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    died = subprocess.run([sys.executable, "-c", _DIE_BEFORE_CLAIM, str(path)], cwd=REPO, env=env)
    assert died.returncode == 9
    (taken,) = load_study(url).get_trials(states=(TrialState.RUNNING,))
    assert ATTR.WORKER not in taken.user_attrs
    resume = [sys.executable, "-m", "moo_search.cli", "run", str(path), "--no-report"]
    try:
        subprocess.run(resume, cwd=REPO, env=env, timeout=120, capture_output=True, check=True)
    except subprocess.TimeoutExpired:
        raise AssertionError("the resumed run waited for ever on the slot nobody runs") from None
    study = load_study(url)
    counts = count_states(study)
    assert counts["COMPLETE"] == 8
    assert counts["RUNNING"] == counts["WAITING"] == counts["PRUNED"] == 0
    (dead,) = study.get_trials(states=(TrialState.FAIL,))
    assert dead.number == taken.number
    assert dead.user_attrs[ATTR.FAIL].startswith("interrupted: its worker stopped before")
    assert _slot_params(study)[dead.user_attrs[ATTR.SLOT]] == dead.system_attrs["fixed_params"]


def test_an_objectives_records_are_stored_by_name_and_variants_inherit_them(monkeypatch, tmp_path):
    """What an objective records beyond its values lands on the trial as ``moo:<name>``; its
    variant inherits the fine-tune's records unless it gives its own; a record that would
    overwrite the engine's own attribute fails the trial, naming it."""
    from tests import objectives

    study = run_study(custom_spec("recorded", n_trials=3, backend="optuna"))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    parents = [t for t in done if ATTR.DERIVED_FROM not in t.user_attrs]
    variants = [t for t in done if ATTR.DERIVED_FROM in t.user_attrs]
    assert len(parents) == 3 and len(variants) == 3
    for t in parents:
        assert t.user_attrs["moo:note"] == f"x={t.params['x']:.3f}"
        assert t.user_attrs["moo:fitted"] == {"name": "toy"}
    for v in variants:
        assert v.user_attrs["moo:note"] == "the variant's own"
        assert v.user_attrs["moo:fitted"] == {"name": "toy"}  # inherited
    monkeypatch.setitem(objectives.EXTRA_RECORDS, "metrics", {"val": {}})
    url = f"sqlite:///{tmp_path}/clash.db"
    spec = custom_spec("recorded", n_trials=1, storage=url, out_dir=str(tmp_path))
    with pytest.raises(MooSearchError, match="trials failed"):  # every trial fails, named
        run_study(spec)
    reasons = {t.user_attrs.get(ATTR.FAIL, "") for t in load_study(url, "custom").trials}
    assert any("record 'metrics' would overwrite the engine's moo:metrics" in r for r in reasons)
