"""Running a study: create or resume it, record its anchors and baselines, run the driver in
this process or in local worker processes, or join it from another host."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from moo_search.drivers._context import StudyContext, StudyProgress, report_progress
from moo_search.drivers._local import run_local_workers
from moo_search.errors import SpecError
from moo_search.objective import objective_for
from moo_search.registry import DRIVERS
from moo_search.spec import StudySpec
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
    fused = objective.fused_evaluator(spec)
    if fused is None and spec.driver.fuse != 1:
        logger.info(
            "driver.fuse = %s: objective %r evaluates one trial at a time",
            spec.driver.fuse,
            spec.objective,
        )
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
        evaluate_group=None if fused is None else fused[1],
        fuse=1 if fused is None else fused[0],
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
        for path, value in params.items():
            dim = spec.search_space[path]
            if not dim.contains(value):  # Optuna would draw another value in its place
                raise SpecError(
                    f"{value!r} lies outside the search space of {path} ({dim.shown()}); an "
                    "enqueued trial runs only values the space can hold",
                    field=f"enqueue.{i}.{path}",
                )
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
        run_local_workers(spec, ctx, url, name, n, timeout, workers)
    return study


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
    run_local_workers(spec, ctx, storage, name, n, None, workers)
    return study


def _run_budget(study: Any, spec: StudySpec) -> int:
    """The budget of the run a worker joins (``run --n-trials`` may differ from the spec's)."""
    stored = study.user_attrs.get(STUDY_ATTR.BUDGET)
    return int(stored) if isinstance(stored, int) and stored > 0 else spec.budget.n_trials
