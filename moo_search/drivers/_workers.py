"""Which process runs which trial, and closing the trials of processes that are gone.

Every trial records the worker that started it (``ATTR.WORKER``: host, node, pid and the
trial's own number, so that a retry, which copies the user attributes, never inherits it).
A RUNNING trial whose worker was on this node (:func:`node_id`) and whose process no longer
exists is failed at once (a SIGKILLed run resumed straight away) and retried like one whose
heartbeat went stale; one on another node is failed when its heartbeat goes stale
(``driver.grace_period``). A RUNNING trial with no worker record of its own belongs to a
worker that died in the instant between taking the trial and recording itself; Optuna never
calls it stale when it has no heartbeat yet either, so it is failed once it has been running
longer than ``driver.grace_period``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import socket
from pathlib import Path
from typing import Any

from moo_search.study import ATTR, STUDY_ATTR

__all__ = [
    "INTERRUPTED",
    "claim",
    "fail_gone_workers",
    "fail_own_trials",
    "fail_stale",
    "reap",
    "worker_record",
]

INTERRUPTED = "interrupted"  # how every reason of a trial stopped from outside begins


def node_id() -> str:
    """Who can see whose processes: the host name, this boot of the machine and the pid
    namespace (two containers may share a host name; their pids are not each other's).
    ``MOO_SEARCH_NODE_ID`` overrides it."""
    return os.environ.get("MOO_SEARCH_NODE_ID") or _system_node_id()


@functools.cache
def _system_node_id() -> str:
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def worker_record(trial_number: int) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "node": node_id(),
        "pid": os.getpid(),
        "trial": trial_number,
    }


def _gone(node: Any, pid: Any) -> bool:
    """True when ``pid`` is a process of this node's that no longer runs."""
    if node != node_id():
        return False  # another node's: its heartbeat decides
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def fail_stale(study: Any) -> int:
    """Fail (and retry, by the storage's callback) RUNNING trials whose heartbeat is stale,
    with the reason; returns how many. (Optuna's ``fail_stale_trials``, plus the reason.)"""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage) or not isinstance(storage, BaseHeartbeat):
        return 0
    backend = getattr(storage, "_backend", storage)  # under Optuna's cache layer
    grace = getattr(backend, "grace_period", None)
    if grace is None:  # Optuna's default: twice the heartbeat interval
        grace = 2 * (storage.get_heartbeat_interval() or 60)
    why = (
        f"{INTERRUPTED}: no heartbeat for more than {grace} s (its worker stopped, hung or "
        "lost the storage)"
    )
    stale: list[int] = []
    with contextlib.suppress(ValueError, NotImplementedError):  # (as Optuna's own check)
        stale = storage._get_stale_trial_ids(study._study_id)
    return sum(_fail(study, trial_id, why) for trial_id in stale)


def reap(study: Any, grace_period: float) -> None:
    """Fail what dead workers left RUNNING: this node's at once, the rest by heartbeat or,
    never having recorded themselves, by age (and the storage's callback retries them)."""
    fail_gone_workers(study, grace_period)
    fail_stale(study)


def claim(study: Any, trial_id: int, number: int) -> None:
    """Record, before anything else, that this process runs the trial it just took: its
    worker record and a first heartbeat, so that its death is seen at once (on this node) or
    by heartbeat (on another)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    storage.set_trial_user_attr(trial_id, ATTR.WORKER, worker_record(number))
    if is_heartbeat_enabled(storage):
        storage.record_heartbeat(trial_id)


def fail_gone_workers(study: Any, grace_period: float | None = None) -> int:
    """Fail the RUNNING trials of this host's workers that no longer exist; returns how many.

    A RUNNING trial with no worker record was started by a version whose pymoo driver ran
    in one process: it is failed when that process (the study's old owner record) is gone.
    Otherwise (no record of its own: none, or one copied from the trial it retries), with
    ``grace_period`` given, it is failed once it has run that many seconds: its worker died
    before it could record itself (see the module doc).
    """
    import datetime

    from optuna.trial import TrialState

    n = 0
    legacy = study.user_attrs.get(STUDY_ATTR.DRIVER_OWNER) or {}
    now, here = datetime.datetime.now(), socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec, unclaimed = t.user_attrs.get(ATTR.WORKER), False
        if isinstance(rec, dict) and rec.get("trial") == t.number:
            host, node, pid = rec.get("host"), rec.get("node"), rec.get("pid")
        elif rec is None and ATTR.SLOT in t.user_attrs and legacy.get("host") == here:
            host, node, pid = here, node_id(), legacy.get("pid")  # (a legacy record: no node)
        elif grace_period is not None and _running_for(t, now) > grace_period:
            host = node = pid = None
            unclaimed = True  # it never said whose it is
        else:
            continue
        if unclaimed:
            why = (
                f"{INTERRUPTED}: its worker stopped before recording itself (no worker record "
                f"of its own after {grace_period:g} s)"
            )
        elif _gone(node, pid):
            why = f"{INTERRUPTED}: its worker (pid {pid} on {host}) stopped while running it"
        else:
            continue
        n += _fail(study, t._trial_id, why)
    return n


def fail_own_trials(study: Any, why: str) -> int:
    """Fail the RUNNING trials this process recorded itself as running (a worker stopping
    for certain: :func:`moo_search.interrupts.stop_for_certain`); returns how many."""
    from optuna.trial import TrialState

    me = worker_record(0)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec = t.user_attrs.get(ATTR.WORKER)
        if isinstance(rec, dict) and (rec.get("node"), rec.get("pid")) == (me["node"], me["pid"]):
            n += _fail(study, t._trial_id, f"{INTERRUPTED}: {why}")
    return n


def _fail(study: Any, trial_id: int, why: str) -> bool:
    """Fail a RUNNING trial with the reason ``why``, then retry it by the storage's policy;
    False when another process closed it first. (The reason is written first: a finished
    trial takes no attributes. A trial that completes in between keeps the reason.)"""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, ATTR.FAIL, why)
        if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False
    retry = _retry_callback(storage)
    if retry is not None:
        frozen = copy.deepcopy(storage.get_trial(trial_id))
        # the retry copies the user attributes: the reason is this trial's, not its retry's
        frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != ATTR.FAIL}
        retry(study, frozen)
    return True


def _running_for(t: Any, now: Any) -> float:
    """Seconds since a RUNNING trial was taken (by this machine's clock: datetime_start is
    the taker's, so clocks skewed by more than the grace period could fail a live trial in
    the milliseconds before it records itself)."""
    return 0.0 if t.datetime_start is None else (now - t.datetime_start).total_seconds()


def _retry_callback(storage: Any) -> Any:
    for name in ("get_heartbeat_stale_trial_callback", "get_failed_trial_callback"):
        get = getattr(storage, name, None)
        if get is not None:
            return get()
    return None
