"""How a study is stored: record keys and typed readers, storage URLs, opening and loading.

The one place that knows the layout of a study in its Optuna storage (and of its files on
disk). Drivers write through it; report and export read through it.
"""

from __future__ import annotations

from moo_search.study._hashes import (
    ArtifactMismatch,
    artifact_hashes,
    artifact_status,
    check_artifacts,
    sha256_file,
)
from moo_search.study._keys import (
    ATTR,
    STUDY_ATTR,
    finite_metrics,
    is_derived,
    is_feasible,
    pack_counts,
    record_key,
    trial_metrics,
    unpack_counts,
    violations,
)
from moo_search.study._lock import study_lock
from moo_search.study._open import (
    check_fingerprint,
    complete_values,
    count_states,
    load_study,
    open_study,
    stored_reference_point,
    study_fingerprint,
    study_home,
)
from moo_search.study._storage import open_storage, resolve_storage_arg

__all__ = [
    "ATTR",
    "STUDY_ATTR",
    "ArtifactMismatch",
    "artifact_hashes",
    "artifact_status",
    "check_artifacts",
    "check_fingerprint",
    "complete_values",
    "count_states",
    "finite_metrics",
    "is_derived",
    "is_feasible",
    "load_study",
    "open_storage",
    "open_study",
    "pack_counts",
    "record_key",
    "resolve_storage_arg",
    "sha256_file",
    "stored_reference_point",
    "study_fingerprint",
    "study_home",
    "study_lock",
    "trial_metrics",
    "unpack_counts",
    "violations",
]
