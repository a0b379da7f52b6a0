"""Running a study: create or resume it, record its anchors and baselines, run the driver in
this process or in local worker processes, or join it from another host."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from moo_search.drivers._context import StudyContext, StudyProgress, report_progress
from moo_search.errors import MooSearchError, SpecError
from moo_search.interrupts import defer_interrupts, pause, resume_interrupts
from moo_search.objective import objective_for
from moo_search.registry import DRIVERS
from moo_search.spec import StudySpec, spec_from_dict
from moo_search.study import (
    ATTR,
    STUDY_ATTR,
    count_states,
    open_storage,
    open_study,
    study_home,
)

__all__ = ["run_study", "run_worker", "run_workers"]

logger = logging.getLogger("moo_search")


def _context(
    spec: StudySpec,
    study: Any,
    url: str,
    n_trials: int,
    timeout: float | None,
    on_progress: Callable[[StudyProgress], None] | None,
) -> StudyContext:
    objective = objective_for(spec.objective)
    return StudyContext(
        spec=spec,
        study=study,
        storage_url=url,
        study_dir=study_home(spec, url, study),
        evaluate=objective.evaluator(spec),
        space=objective.search_space(spec),
        objective=objective,
        n_trials=n_trials,
        timeout=timeout,
        on_progress=on_progress,
    )


def _enqueue_anchors(spec: StudySpec, study: Any) -> None:
    if study.user_attrs.get(STUDY_ATTR.ENQUEUED) or study.trials:
        return
    anchors: list[tuple[str, dict[str, Any]]] = []
    base = objective_for(spec.objective).base_params(spec)
    if base:
        anchors.append(("base", base))
    for i, named in enumerate(spec.enqueue):
        params = {k: v for k, v in named.items() if k != "name"}
        unknown = [k for k in params if k not in spec.search_space]
        if unknown:
            raise SpecError(f"params {unknown} are not search dimensions", field=f"enqueue.{i}")
        # a variant of the base config: what it does not set keeps the base's value
        anchors.append((str(named.get("name", f"enqueued-{i}")), {**base, **params}))
    for name, params in anchors:
        study.enqueue_trial(params, user_attrs={ATTR.ANCHOR: name})
    study.set_user_attr(STUDY_ATTR.ENQUEUED, [a[0] for a in anchors])


def _worker_seeded(spec: StudySpec, history: int = 0) -> StudySpec:
    """A copy of the spec with this process's own sampler seed, for a joining worker or a
    resume (``history``: trials the study already holds): a sampler seeded as the first run's
    would propose that run's first draws again (the process creating a study keeps the
    spec's seed, so a fresh study is reproducible)."""
    import hashlib
    import socket

    key = f"{socket.gethostname()}:{os.getpid()}:{history}"
    salt = hashlib.sha256(key.encode()).digest()
    seed = (spec.driver.seed + 1 + int.from_bytes(salt[:4], "big")) % 2**31
    return spec.model_copy(update={"driver": spec.driver.model_copy(update={"seed": seed})})


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


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover
        return 0


def _open_spec_storage(spec: StudySpec, url: str) -> Any:
    return open_storage(
        url,
        heartbeat_interval=spec.driver.heartbeat_interval,
        grace_period=spec.driver.grace_period,
    )


def _join(spec: StudySpec, storage: str, study_name: str | None) -> tuple[Any, str]:
    """Open an existing study for extra workers."""
    name = study_name or spec.name
    store = _open_spec_storage(spec, storage)
    return open_study(
        spec,
        storage=store,
        study_name=name,
        create=False,
        sampler=DRIVERS.get(spec.driver.backend).sampler(_worker_seeded(spec)),
    ), name


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    timeout: float | None = None,
    on_progress: Callable[[StudyProgress], None] | None = None,
) -> Any:
    """Create or resume the study and run it until ``n_trials`` trials are complete.

    Running again continues to the budget; finished trials are never repeated. A failed
    trial is recorded with its reason and the study goes on. Returns the ``optuna.Study``.
    """
    n = n_trials or spec.budget.n_trials
    url = storage or spec.storage_url
    name = study_name or spec.name
    timeout = timeout if timeout is not None else spec.budget.timeout
    if workers < 1:
        raise SpecError(f"--workers must be >= 1, got {workers}", field="workers")
    if workers > 1 and url.startswith("memory"):
        raise SpecError(
            "several workers need a shared storage (sqlite:/// or postgresql://), not memory",
            field="storage",
        )
    if url == spec.storage_url and not spec.storage:
        spec.study_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite lives there
    store = _open_spec_storage(spec, url)
    study = open_study(
        spec,
        storage=store,
        study_name=name,
        create=True,
        sampler=DRIVERS.get(spec.driver.backend).sampler(spec),
    )
    study.set_user_attr(STUDY_ATTR.BUDGET, n)  # what a worker joining this run works to
    history = len(study.get_trials(deepcopy=False))
    if history:  # a resume, or a second process on the study: draws of its own
        study.sampler = DRIVERS.get(spec.driver.backend).sampler(_worker_seeded(spec, history))
    home = study_home(spec, url, study)  # after the resume checks: a refused spec writes nothing
    home.mkdir(parents=True, exist_ok=True)
    spec.save(home / "spec.yaml")
    _enqueue_anchors(spec, study)
    objective_for(spec.objective).setup_study(spec, study)
    ctx = _context(spec, study, url, n, timeout, on_progress)
    done = count_states(study)["COMPLETE"]
    if done:
        logger.info("resuming study %r: %d/%d trials complete", name, done, n)
    if workers == 1:
        try:
            DRIVERS.get(spec.driver.backend)().run(ctx, max_failures=spec.budget.max_failures)
        finally:
            report_progress(ctx, force=True)
    else:
        _run_local_workers(spec, ctx, url, name, n, timeout, workers)
    return study


def _run_local_workers(
    spec: StudySpec,
    ctx: StudyContext,
    url: str,
    name: str,
    n: int,
    timeout: float | None,
    workers: int,
) -> None:
    gpus = _gpu_count()
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


def run_worker(
    spec: StudySpec,
    *,
    storage: str,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    on_progress: Callable[[StudyProgress], None] | None = None,
    failures_before: int | None = None,
) -> Any:
    """Join a running study (created by ``moo-search run``) and work until its budget is met
    (``failures_before``: see :attr:`StudyContext.failures_before`)."""
    study, _ = _join(spec, storage, study_name)
    n = n_trials or _run_budget(study, spec)
    ctx = _context(spec, study, storage, n, timeout, on_progress)
    ctx.failures_before = failures_before
    DRIVERS.get(spec.driver.backend)().run(ctx, max_failures=spec.budget.max_failures)
    return study


def run_workers(
    spec: StudySpec,
    *,
    storage: str,
    workers: int,
    study_name: str | None = None,
    n_trials: int | None = None,
    on_progress: Callable[[StudyProgress], None] | None = None,
) -> Any:
    """Join a running study with ``workers`` local processes (one per GPU when several are
    visible) and report progress from this process until the budget (``n_trials``, else the
    joined run's) is met."""
    if storage.startswith("memory"):
        raise SpecError("workers need a shared storage URL, not memory", field="storage")
    study, name = _join(spec, storage, study_name)
    n = n_trials or _run_budget(study, spec)
    ctx = _context(spec, study, storage, n, None, on_progress)
    _run_local_workers(spec, ctx, storage, name, n, None, workers)
    return study


def _run_budget(study: Any, spec: StudySpec) -> int:
    """The budget of the run a worker joins (``run --n-trials`` may differ from the spec's)."""
    stored = study.user_attrs.get(STUDY_ATTR.BUDGET)
    return int(stored) if isinstance(stored, int) and stored > 0 else spec.budget.n_trials
