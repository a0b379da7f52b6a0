"""Creating, resuming and opening studies; where a study's files live; what it holds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from moo_search.errors import SpecError, StorageError
from moo_search.study._keys import STUDY_ATTR, is_derived, is_feasible
from moo_search.study._storage import open_storage, resolve_storage_arg

if TYPE_CHECKING:  # pragma: no cover
    from moo_search.spec import StudySpec

__all__ = [
    "check_fingerprint",
    "complete_values",
    "count_states",
    "load_study",
    "open_study",
    "stored_reference_point",
    "study_fingerprint",
    "study_home",
]


def _name_metrics(study: Any, names: list[str]) -> None:
    """So that optuna-dashboard and plain Optuna show our objectives by name."""
    import warnings

    import optuna

    if hasattr(study, "set_metric_names"):
        with warnings.catch_warnings():  # marked experimental in Optuna 3.x-5.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def study_fingerprint(spec: StudySpec) -> dict[str, Any]:
    """What must not change between the runs and workers of one study: the search space,
    objectives and constraints, the objective (and problem options), the data and split, and
    the driver (backend and algorithm: one study is searched one way)."""
    from moo_search.objective import objective_for

    raw = spec.to_dict()
    record = objective_for(spec.objective).study_record(spec)
    return {
        "search_space": raw["search_space"],
        "objectives": raw["objectives"],
        "constraints": raw["constraints"],
        "objective": raw["objective"],
        "problem": raw["problem"],
        "data": record.get("data"),
        "driver": {"backend": spec.driver.backend, "algorithm": spec.driver.algorithm},
    }


def _stored_fingerprint(study: Any) -> dict[str, Any] | None:
    stored = study.user_attrs.get(STUDY_ATTR.FINGERPRINT)
    if stored is not None:
        if not isinstance(stored, dict):
            raise StorageError(
                f"study {study.study_name!r}: its {STUDY_ATTR.FINGERPRINT} record (what a resume "
                f"is checked against) should be a mapping, found {type(stored).__name__}; the "
                "study's attributes were altered. Nothing was written."
            )
        return dict(stored)  # a study from before a part was fingerprinted lacks that part
    old_spec = study.user_attrs.get(STUDY_ATTR.SPEC)  # a study from before fingerprints
    if old_spec is None:
        return None
    from moo_search.spec import spec_from_dict

    try:
        return study_fingerprint(spec_from_dict(old_spec))
    except SpecError:  # a spec of an older schema: nothing to compare against
        return None


def check_fingerprint(study: Any, spec: StudySpec) -> None:
    """Refuse to resume or join ``study`` with a spec that would make it another study.

    Raises:
        StorageError: naming each part that differs, with both values; nothing is written.
    """
    from moo_search.objective import objective_for

    stored = _stored_fingerprint(study)
    if stored is None:
        return
    if stored.get("data") is not None:  # in today's shape (old keys moved by the objective)
        read = objective_for(spec.objective).read_study_record({"data": stored["data"]})
        stored["data"] = read.get("data")
    mine = study_fingerprint(spec)
    diff = [k for k in mine if k in stored and stored[k] != mine[k]]
    if diff:
        parts = "; ".join(f"{k}: the study has {stored[k]!r}, this spec {mine[k]!r}" for k in diff)
        raise StorageError(
            f"study {study.study_name!r} was created with a different {', '.join(diff)} ({parts}). "
            "Resuming would mix two studies in one; use another --study-name or storage to start "
            "a new study. Nothing was written."
        )


def open_study(
    spec: StudySpec, *, storage: Any, study_name: str, create: bool, sampler: Any = None
) -> Any:
    """Create (or resume) ``study_name`` for ``spec``, or join an existing one (``create=False``).

    A resumed study must have the spec's objectives; a new one records the spec, the
    objectives, the package version and a random study id.

    Raises:
        StorageError: the study exists with other objectives, or (joining) does not exist.
    """
    import optuna

    directions = [o.direction for o in spec.objectives]
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,
            sampler=sampler,
            load_if_exists=True,
        )
        existing = study.user_attrs.get(STUDY_ATTR.OBJECTIVES)
        mine = [o.model_dump() for o in spec.objectives]
        if existing is not None and existing != mine:
            raise StorageError(
                f"study {study_name!r} already exists with objectives {existing}; this spec has "
                f"{mine}. Use another --study-name or storage to start a new study."
            )
        if existing is not None:
            check_fingerprint(study, spec)
        if getattr(study, "metric_names", None) is None:
            _name_metrics(study, [o.metric for o in spec.objectives])
        if existing is None:
            import uuid

            from moo_search._version import __version__

            study.set_user_attr(STUDY_ATTR.STUDY_ID, uuid.uuid4().hex)
            study.set_user_attr(STUDY_ATTR.OBJECTIVES, mine)
            study.set_user_attr(STUDY_ATTR.SPEC, spec.to_dict())
            study.set_user_attr(STUDY_ATTR.VERSION, __version__)
            study.set_user_attr(STUDY_ATTR.FINGERPRINT, study_fingerprint(spec))
        return study
    try:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:
        raise StorageError(
            f"no study named {study_name!r} in this storage; start it with `moo-search run`"
        ) from None
    check_fingerprint(study, spec)
    return study


def load_study(target: str | Path, study_name: str | None = None) -> Any:
    """Open a study by its directory (``reports/<study>``), a ``.db`` file or a storage URL.

    With one study in the storage ``study_name`` may be omitted.
    """
    import optuna

    url, _ = resolve_storage_arg(str(target))
    store = open_storage(url, heartbeat_interval=None, grace_period=None, read_only=True)
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


def study_home(spec: StudySpec, url: str, study: Any) -> Path:
    """Where a study's artifacts, report and spec.yaml live.

    The spec's own study (its storage, its name) keeps the simple layout ``reports/<name>/``;
    any other study run from the spec (``--storage`` / ``--study-name``) gets a directory of its
    own inside it, named by the study and the id recorded in its storage, so two studies never
    write over each other's artifacts.
    """
    if url == spec.storage_url and study.study_name == spec.name:
        return spec.study_dir
    sid = str(study.user_attrs.get(STUDY_ATTR.STUDY_ID) or study._study_id)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", study.study_name).strip("-.") or "study"
    return spec.study_dir / f"{slug}-{sid[:8]}"


def count_states(study: Any) -> dict[str, int]:
    """Trials per state; inference-only variants (``DERIVED``) are not counted as COMPLETE:
    the budget counts the trials that ran."""
    from optuna.trial import TrialState

    counts = {s.name: 0 for s in TrialState}
    counts["DERIVED"] = 0
    for t in study.get_trials(deepcopy=False):
        if is_derived(t):
            counts["DERIVED"] += 1
        else:
            counts[t.state.name] += 1
    return counts


def complete_values(study: Any, *, feasible_only: bool = False) -> np.ndarray:
    """Objective values of the COMPLETE trials, (n, n_objectives)."""
    from optuna.trial import TrialState

    rows = [
        t.values
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not feasible_only or is_feasible(t)
    ]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(study.directions))


def stored_reference_point(
    study: Any, spec: StudySpec, directions: list[str]
) -> list[float] | None:
    """The study's fixed hypervolume reference point: stored on first use (from the spec's
    ``driver.reference_point`` or derived from the first complete trials), then never moved."""
    from moo_search.pareto import default_reference_point

    stored = study.user_attrs.get(STUDY_ATTR.REFERENCE)
    if stored is not None:
        return [float(v) for v in stored]
    if spec.driver.reference_point is not None:
        ref = [float(v) for v in spec.driver.reference_point]
    else:
        F = complete_values(study)
        if len(F) == 0:
            return None
        ref = default_reference_point(F, directions).tolist()
    study.set_user_attr(STUDY_ATTR.REFERENCE, ref)
    return ref
