"""Study drivers (Optuna, pymoo) behind one small protocol, over one Optuna storage.

``run_study(spec)`` creates or resumes a study and runs it to its budget; ``run_worker``
joins a running study from any host; ``load_study`` opens one for reports and exports.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from moo_search.drivers._optuna import OptunaDriver, make_sampler
from moo_search.drivers._pymoo import PymooDriver
from moo_search.drivers._storage import open_storage, resolve_storage_arg
from moo_search.drivers._study import (
    ATTR,
    STUDY_ATTR,
    StudyContext,
    StudyProgress,
    base_params,
    count_states,
    make_evaluator,
    open_study,
    report_progress,
    search_space,
    study_home,
)
from moo_search.errors import MooSearchError, SpecError, StorageError
from moo_search.spec import StudySpec, spec_from_dict

__all__ = [
    "ATTR",
    "DRIVERS",
    "STUDY_ATTR",
    "Driver",
    "StudyProgress",
    "load_study",
    "open_storage",
    "run_study",
    "run_worker",
    "run_workers",
    "study_home",
]

logger = logging.getLogger("moo_search")


class Driver(Protocol):
    """Runs trials of ``ctx.study`` until ``ctx.n_trials`` are complete (or time runs out)."""

    name: str

    def run(self, ctx: StudyContext, *, max_failures: int) -> None: ...


DRIVERS: dict[str, Callable[[], Driver]] = {"optuna": OptunaDriver, "pymoo": PymooDriver}


def _sampler(spec: StudySpec) -> Any:
    import optuna

    if spec.driver.backend == "pymoo":
        return optuna.samplers.RandomSampler(seed=spec.driver.seed)  # params are always enqueued
    return make_sampler(spec.driver, constrained=bool(spec.constraints))


def _context(
    spec: StudySpec,
    study: Any,
    url: str,
    n_trials: int,
    timeout: float | None,
    on_progress: Callable[[StudyProgress], None] | None,
) -> StudyContext:
    return StudyContext(
        spec=spec,
        study=study,
        storage_url=url,
        study_dir=study_home(spec, url, study),
        evaluate=make_evaluator(spec),
        space=search_space(spec),
        n_trials=n_trials,
        timeout=timeout,
        on_progress=on_progress,
    )


def _enqueue_anchors(spec: StudySpec, study: Any) -> None:
    if study.user_attrs.get(STUDY_ATTR.ENQUEUED) or study.trials:
        return
    anchors: list[tuple[str, dict[str, Any]]] = []
    base = base_params(spec)
    if base:
        anchors.append(("base", base))
    for i, named in enumerate(spec.enqueue):
        params = {k: v for k, v in named.items() if k != "name"}
        unknown = [k for k in params if k not in spec.search_space]
        if unknown:
            raise SpecError(f"params {unknown} are not search dimensions", field=f"enqueue.{i}")
        anchors.append((str(named.get("name", f"enqueued-{i}")), params))
    for name, params in anchors:
        study.enqueue_trial(params, user_attrs={ATTR.ANCHOR: name})
    study.set_user_attr(STUDY_ATTR.ENQUEUED, [a[0] for a in anchors])


def _record_baselines(spec: StudySpec, study: Any) -> None:
    """Baselines and the reference front, computed once per study (on its first run)."""
    if not spec.uses_default_trial:
        return
    from moo_search.trial import prepare_data

    data = None
    if STUDY_ATTR.BASELINES not in study.user_attrs:
        from moo_search.model.baselines import evaluate_baselines

        data = prepare_data(spec)
        res = evaluate_baselines(data.ds, data.split, spec.eval, seed=spec.seed)
        study.set_user_attr(STUDY_ATTR.BASELINES, res)
    if STUDY_ATTR.REFERENCE_FRONT not in study.user_attrs:
        from moo_search.reference import reference_front

        data = data or prepare_data(spec)
        study.set_user_attr(STUDY_ATTR.REFERENCE_FRONT, reference_front(spec, data))


def _worker_entry(
    spec_dict: dict[str, Any],
    url: str,
    study_name: str,
    n_trials: int,
    timeout: float | None,
    gpu: int | None,
) -> None:
    """A spawned local worker process."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    spec = spec_from_dict(spec_dict)
    with contextlib.suppress(KeyboardInterrupt):  # the trial is marked; the parent reports
        run_worker(spec, storage=url, study_name=study_name, n_trials=n_trials, timeout=timeout)


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
    """Open an existing study for extra workers (optuna-driven studies only)."""
    if spec.driver.backend == "pymoo":
        raise SpecError(
            "a pymoo-driven study takes no extra workers; use driver.backend: optuna",
            field="driver.backend",
        )
    name = study_name or spec.name
    store = _open_spec_storage(spec, storage)
    return open_study(
        spec, storage=store, study_name=name, create=False, sampler=_sampler(spec)
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
    report: bool = True,
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
    if workers > 1 and spec.driver.backend == "pymoo":
        raise SpecError(
            "the pymoo driver evaluates in one process; use --workers 1 or driver.backend: optuna",
            field="driver.backend",
        )
    if url == spec.storage_url and not spec.storage:
        spec.study_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite lives there
    store = _open_spec_storage(spec, url)
    study = open_study(spec, storage=store, study_name=name, create=True, sampler=_sampler(spec))
    home = study_home(spec, url, study)  # after the resume checks: a refused spec writes nothing
    home.mkdir(parents=True, exist_ok=True)
    spec.save(home / "spec.yaml")
    _enqueue_anchors(spec, study)
    _record_baselines(spec, study)
    ctx = _context(spec, study, url, n, timeout, on_progress)
    done = count_states(study)["COMPLETE"]
    if done:
        logger.info("resuming study %r: %d/%d trials complete", name, done, n)
    if workers == 1:
        try:
            DRIVERS[spec.driver.backend]().run(ctx, max_failures=spec.budget.max_failures)
        finally:
            report_progress(ctx, force=True)
    else:
        _run_local_workers(spec, ctx, url, name, n, timeout, workers)
    if report and spec.uses_default_trial:
        _build_report(spec, url, study)
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
    procs = [
        proc_ctx.Process(
            target=_worker_entry,
            args=(spec.to_dict(redact=False), url, name, n, timeout, (i % gpus) if gpus else None),
            name=f"moo-search-worker-{i}",
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    last = None
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(2.0)
            counts = count_states(ctx.study)
            key = (counts["COMPLETE"], counts["FAIL"], counts["RUNNING"])
            if key != last:
                last = key
                report_progress(ctx, force=True)
    finally:
        for p in procs:
            p.join(timeout=30)
    report_progress(ctx, force=True)


def _build_report(spec: StudySpec, url: str, study: Any) -> None:
    try:
        from moo_search.report import build_report
    except ImportError:  # pragma: no cover - report not installed
        return
    # the default SQLite lives in the study directory: name the directory (shorter commands)
    target = str(spec.study_dir) if url == spec.storage_url and not spec.storage else url
    home = study_home(spec, url, study)
    try:
        path = build_report(target, study_name=study.study_name, out=home / "index.html")
        logger.info("report: %s", path)
    except MooSearchError as e:
        logger.warning("could not build the report: %s", e)


def run_worker(
    spec: StudySpec,
    *,
    storage: str,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    on_progress: Callable[[StudyProgress], None] | None = None,
) -> Any:
    """Join a running study (created by ``moo-search run``) and work until its budget is met."""
    study, _ = _join(spec, storage, study_name)
    ctx = _context(spec, study, storage, n_trials or spec.budget.n_trials, timeout, on_progress)
    DRIVERS[spec.driver.backend]().run(ctx, max_failures=spec.budget.max_failures)
    return study


def run_workers(
    spec: StudySpec,
    *,
    storage: str,
    workers: int,
    study_name: str | None = None,
    on_progress: Callable[[StudyProgress], None] | None = None,
) -> Any:
    """Join a running study with ``workers`` local processes (one per GPU when several are
    visible) and report progress from this process until the budget is met."""
    if storage.startswith("memory"):
        raise SpecError("workers need a shared storage URL, not memory", field="storage")
    study, name = _join(spec, storage, study_name)
    ctx = _context(spec, study, storage, spec.budget.n_trials, None, on_progress)
    _run_local_workers(spec, ctx, storage, name, spec.budget.n_trials, None, workers)
    return study


def load_study(target: str | Path, study_name: str | None = None) -> Any:
    """Open a study by its directory (``reports/<study>``), a ``.db`` file or a storage URL.

    With one study in the storage ``study_name`` may be omitted.
    """
    import optuna

    url, _ = resolve_storage_arg(str(target))
    store = open_storage(url, heartbeat_interval=None, grace_period=None)
    names = optuna.get_all_study_names(storage=store)  # summaries would read every trial
    if study_name is None:
        if len(names) != 1:
            raise StorageError(
                f"{target} holds {len(names)} studies ({', '.join(names) or 'none'}); pass --study-name"
            )
        study_name = names[0]
    if study_name not in names:
        raise StorageError(
            f"{target} has no study {study_name!r}; it has: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=store)
