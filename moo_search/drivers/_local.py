"""Local worker processes: ``run --workers N`` and ``worker --workers N`` spawn them, watch
them, and stop them for certain (an interrupt, a bounded grace, then a kill); a worker whose
parent is gone stops itself the same way."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import time
from typing import Any

from moo_search.drivers._context import StudyContext, report_progress
from moo_search.errors import MooSearchError
from moo_search.interrupts import defer_interrupts, pause, resume_interrupts
from moo_search.spec import StudySpec, spec_from_dict
from moo_search.study import count_states

__all__ = ["gpu_count", "run_local_workers"]


def run_local_workers(
    spec: StudySpec,
    ctx: StudyContext,
    url: str,
    name: str,
    n: int,
    timeout: float | None,
    workers: int,
) -> None:
    gpus = gpu_count()
    proc_ctx = mp.get_context("spawn")
    failed_before = count_states(ctx.study)["FAIL"]
    procs = [
        proc_ctx.Process(
            target=_worker_entry,
            args=(
                spec.to_dict(redact=False),
                url,
                name,
                n,
                timeout,
                (i % gpus) if gpus else None,
                failed_before,
            ),
            name=f"moo-search-worker-{i}",
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    last = None
    defer_interrupts()  # Ctrl-C lands in the wait, never inside a storage call
    try:
        while any(p.is_alive() for p in procs):
            pause(2.0)
            counts = count_states(ctx.study)
            key = (counts["COMPLETE"], counts["FAIL"], counts["RUNNING"])
            if key != last:
                last = key
                report_progress(ctx, force=True)
            if counts["FAIL"] - failed_before >= spec.budget.max_failures:
                raise MooSearchError(
                    f"{counts['FAIL'] - failed_before} trials failed in this run, the study's "
                    f"limit (budget.max_failures = {spec.budget.max_failures}); the workers were "
                    "stopped. See the reasons in the report or the trial table."
                )
    finally:
        _stop_workers(procs, ctx.study)
        resume_interrupts()
    report_progress(ctx, force=True)
    codes = [p.exitcode for p in procs]
    bad = [c for c in codes if c not in (0, None)]
    if bad:
        raise MooSearchError(
            f"{len(bad)} of {len(procs)} workers failed (exit codes {codes}); their messages "
            "are above"
        )


def _stop_workers(procs: list[Any], study: Any, grace: float = 5.0) -> None:
    """Ask running workers to stop as Ctrl-C does (their trials are marked failed); kill any
    still running after ``grace`` seconds (an interrupt can be swallowed:
    :func:`moo_search.interrupts.stop_for_certain`), then fail the trials a gone worker left
    RUNNING."""
    import signal

    from moo_search.drivers._workers import fail_gone_workers

    alive = [p for p in procs if p.is_alive() and p.pid is not None]
    for p in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGINT)
    end = time.monotonic() + grace
    while time.monotonic() < end and any(p.is_alive() for p in alive):
        time.sleep(0.05)
    for p in alive:
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    with contextlib.suppress(Exception):  # the storage may be what stopped the run
        fail_gone_workers(study)  # a worker killed, or interrupted while it closed its trial


def _worker_entry(
    spec_dict: dict[str, Any],
    url: str,
    study_name: str,
    n_trials: int,
    timeout: float | None,
    gpu: int | None,
    failures_before: int | None = None,
) -> None:
    """A spawned local worker process."""
    from moo_search.interrupts import dump_stacks_on_sigusr1, interrupt_on_sigterm, interrupted

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    _log_like_the_cli()
    interrupt_on_sigterm(once=True)  # stop as Ctrl-C does, once
    defer_interrupts()  # ... in a trial's evaluation or a wait, never inside a storage call
    dump_stacks_on_sigusr1()
    _die_with_parent(url, study_name)
    try:
        spec = spec_from_dict(spec_dict)
        from moo_search.drivers._run import run_worker

        run_worker(
            spec,
            storage=url,
            study_name=study_name,
            n_trials=n_trials,
            timeout=timeout,
            failures_before=failures_before,
        )
    except KeyboardInterrupt:  # the trial is marked failed; the parent reports
        _stopped(url, study_name)
    except MooSearchError as e:  # a message, not a traceback; the parent's exit says it failed
        print(f"moo-search: worker {os.getpid()}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:
        if not interrupted():
            raise  # a bug: the traceback is the report
        # stopping, closing its trial failed in the storage (locked, gone) or in Optuna
        print(
            f"moo-search: worker {os.getpid()}: stopped; closing its trial failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            file=sys.stderr,
        )
        _stopped(url, study_name)


def _stopped(url: str, study_name: str) -> None:
    """Exit as an interrupted worker, its RUNNING trials failed (again, if the interrupt cut
    that short)."""
    with contextlib.suppress(Exception):
        _fail_own_trials(url, study_name, "interrupted (Ctrl-C)")
    sys.exit(130)


def _log_like_the_cli() -> None:
    """A spawned worker logs as ``moo-search`` does at its default verbosity: our warnings
    on stderr; failed trials are reported with their reason on the parent's progress line,
    not as Optuna's tracebacks."""
    import optuna

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    lib = logging.getLogger("moo_search")
    lib.handlers[:] = [handler]
    lib.setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for noisy in ("transformers", "peft"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _die_with_parent(url: str, study_name: str, poll: float = 0.5) -> None:
    """Stop this worker when the process that started it is gone, so a killed ``run`` leaves
    no orphan working on: interrupted as Ctrl-C would (its trial is marked failed), and if that
    did not stop it within ``ORPHAN_GRACE`` seconds, ended at once with its trials marked
    failed here (:func:`moo_search.interrupts.stop_for_certain`). Workers are gone within
    ``poll + ORPHAN_GRACE + LAST_WORDS_SECONDS`` seconds of their parent's death."""
    import threading

    from moo_search.interrupts import stop_for_certain

    parent = os.getppid()

    def watch() -> None:
        study = _study_handle(url, study_name)  # opened now: dying is no time to connect
        while os.getppid() == parent:
            time.sleep(poll)
        stop_for_certain(
            grace=ORPHAN_GRACE,
            last_words=lambda: _fail_own_trials(url, study_name, "its parent process died", study),
            last_words_timeout=LAST_WORDS_SECONDS,
        )

    threading.Thread(target=watch, name="moo-search-parent-watch", daemon=True).start()


def _study_handle(url: str, study_name: str) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=url)
    except Exception:  # (the last words open one themselves)
        return None


ORPHAN_GRACE = 4.0  # seconds an orphaned worker has to stop as Ctrl-C does before it exits
LAST_WORDS_SECONDS = 4.0  # then at most this long to mark its trials failed


def _fail_own_trials(url: str, study_name: str, why: str, study: Any = None) -> None:
    """Mark this process's RUNNING trials failed, through a connection of its own (the main
    thread's may be the one that is stuck)."""
    from moo_search.drivers._workers import fail_own_trials

    fail_own_trials(study or _study_handle(url, study_name), why)


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0
