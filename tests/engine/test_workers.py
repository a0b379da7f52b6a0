"""Local workers belong to their parent: exit codes, one failure limit, signals, orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from moo_search.study import ATTR, STUDY_ATTR

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, objective: str, n_trials: int, **extra) -> Path:
    spec = {
        "name": "w",
        "objective": f"tests.objectives:{objective}",
        "search_space": {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}},
        "objectives": [
            {"metric": "a", "direction": "minimize"},
            {"metric": "b", "direction": "minimize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": n_trials},
        "out_dir": str(tmp_path / "study"),
        **extra,
    }
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "moo_search.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "MOO_TEST_MARKERS": str(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_study_whose_trials_all_fail_exits_non_zero_with_workers(tmp_path):
    path = _spec(tmp_path, "always_fails", 6, budget={"n_trials": 6, "max_failures": 3})
    proc = _run(["run", str(path), "--workers", "2"], tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode != 0, err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "max_failures" in err
    url = f"sqlite:///{tmp_path}/study/study.db"
    study = optuna.load_study(study_name="w", storage=url)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    # one study-wide limit: the parent stops both workers once 3 have failed between them
    assert 3 <= len(failed) <= 3 + 2, len(failed)
    assert all("always fails" in t.user_attrs.get(ATTR.FAIL, "") for t in failed)


def _pids_of_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # (reaped between the signal and the read: gone; the read then raises ENOENT or ESRCH)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _cmdline(pid: int) -> str:
    try:  # (a process may exit between the listing and the read)
        return Path(f"/proc/{pid}/cmdline").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


WORKERS_GONE_WITHIN = 10.0  # the promise: seconds from the parent's death to its workers' exit


def _start_two_workers(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    path = _spec(tmp_path, "slow", 200)
    # output to files, not pipes: what is waited on is the processes, not who holds a pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "moo_search.cli", "run", str(path), "--workers", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "MOO_TEST_SLEEP": "0.5"},
        stdout=(tmp_path / "out.txt").open("w"),
        stderr=(tmp_path / "err.txt").open("w"),
        start_new_session=True,
    )
    end = time.time() + 90
    workers: list[int] = []
    while time.time() < end and len(workers) < 2:
        time.sleep(0.5)
        workers = [p for p in _pids_of_children(proc.pid) if _alive(p)]
        workers = [p for p in workers if "spawn_main" in _cmdline(p)]
    assert len(workers) == 2, "the workers never started"
    time.sleep(2)  # let them take trials
    return proc, workers


def _stacks_of(pids: list[int], err: Path) -> str:
    """What still-running processes are doing (``kill -USR1``: faulthandler's dump)."""
    for p in pids:
        if _alive(p):
            os.kill(p, signal.SIGUSR1)
    time.sleep(1.0)
    return err.read_text()[-6000:]


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "err.txt").read_text()[-6000:]


def _seconds_until_gone(pids: list[int], bound: float) -> float:
    """Seconds until every pid has exited (polled), or ``inf`` past ``bound``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        if not any(_alive(p) for p in pids):
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("inf")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_parent_leaves_no_worker_running(tmp_path, sig):
    proc, workers = _start_two_workers(tmp_path)
    os.kill(proc.pid, sig)
    # SIGTERM: the parent stops its workers; SIGKILL: they see it is gone and stop themselves
    took = _seconds_until_gone(workers, WORKERS_GONE_WITHIN)
    stacks = _stacks_of(workers, tmp_path / "err.txt") if took > WORKERS_GONE_WITHIN else ""
    for p in workers:
        if _alive(p):  # leave nothing behind for the next test, then fail
            os.kill(p, signal.SIGKILL)
    assert took <= WORKERS_GONE_WITHIN, (
        f"a worker outlived its parent's {signal.Signals(sig).name} by more than "
        f"{WORKERS_GONE_WITHIN:g} s:\n{stacks}"
    )
    print(f"workers gone {took:.2f} s after the parent's {signal.Signals(sig).name}")
    if sig == signal.SIGTERM:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stacks = _stacks_of([proc.pid], tmp_path / "err.txt")
            proc.kill()
            raise AssertionError(f"the parent outlived its workers by 30 s:\n{stacks}") from None
        err = (tmp_path / "err.txt").read_text()
        assert code == 130, err
        assert "Traceback" not in err, err
    else:
        proc.wait(timeout=30)  # (killed: it is a zombie until reaped)
    url = f"sqlite:///{tmp_path}/study/study.db"
    study = optuna.load_study(study_name="w", storage=url)
    # the trials they were running are failed with the reason: none is left RUNNING
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert not running, ([(t.number, t.user_attrs) for t in running], _tail(tmp_path))
    # (stopped between two trials, a worker fails none)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert all(t.user_attrs.get(ATTR.FAIL, "").startswith("interrupted") for t in failed), [
        (t.number, t.user_attrs) for t in failed
    ]
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 200


def _zdt_spec(tmp_path: Path, backend: str = "optuna") -> Path:
    path = tmp_path / f"z-{backend}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "z",
                "objective": "zdt1",
                "problem": {"n_var": 4},
                "objectives": [
                    {"metric": "f1", "direction": "minimize"},
                    {"metric": "f2", "direction": "minimize"},
                ],
                "driver": {"backend": backend, "population": 4, "reference_point": [1.1, 1.1]},
                "budget": {"n_trials": 6},
                "out_dir": str(tmp_path / "study"),
            }
        )
    )
    return path


def test_a_joining_worker_works_to_the_runs_budget_not_the_specs(tmp_path, capsys):
    from moo_search.cli import main

    path = _zdt_spec(tmp_path)
    url = f"sqlite:///{tmp_path}/study/study.db"
    assert main(["run", str(path), "--n-trials", "3"]) == 0
    assert main(["worker", str(path), "--storage", url]) == 0
    study = optuna.load_study(study_name="z", storage=url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


def test_a_worker_with_another_driver_is_refused_and_a_corrupt_fingerprint_is_named(
    tmp_path, capsys
):
    from moo_search.cli import main

    path = _zdt_spec(tmp_path)
    url = f"sqlite:///{tmp_path}/study/study.db"
    assert main(["run", str(path), "--n-trials", "2"]) == 0
    capsys.readouterr()
    other = _zdt_spec(tmp_path, backend="pymoo")
    assert main(["worker", str(other), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "different driver" in err and "'pymoo'" in err and "Traceback" not in err
    study = optuna.load_study(study_name="z", storage=url)
    study.set_user_attr(STUDY_ATTR.FINGERPRINT, "garbage")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert STUDY_ATTR.FINGERPRINT in err and "Traceback" not in err


FINALIZER = """
import gc, sys, time
from moo_search.interrupts import interrupt_on_sigterm
interrupt_on_sigterm()

class Loud:
    def __del__(self):
        raise KeyboardInterrupt  # as a SIGTERM landing in a finalizer would

try:
    Loud()
    gc.collect()
    time.sleep(5)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_interrupt_that_lands_in_a_finalizer_is_delivered_again_without_a_traceback():
    import subprocess
    import sys

    from ..conftest import REPO

    proc = subprocess.run(
        [sys.executable, "-c", FINALIZER],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout.strip() == "interrupted", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
