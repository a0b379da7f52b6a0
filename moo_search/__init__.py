"""moo-search: multi-objective Pareto search over PEFT fine-tunes of LM recommenders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moo_search._version import __version__
from moo_search.errors import (
    DataError,
    ExportError,
    MooSearchError,
    SpecError,
    StorageError,
    TrialFailed,
)
from moo_search.spec import StudySpec, load_spec

__all__ = [
    "DataError",
    "ExportError",
    "MooSearchError",
    "SpecError",
    "StorageError",
    "StudySpec",
    "TrialFailed",
    "__version__",
    "build_report",
    "export_trial",
    "load_exported",
    "load_spec",
    "load_study",
    "run_study",
    "run_trial",
]

# Heavy modules (torch, optuna, plotly) load on first use.
_LAZY = {
    "run_trial": "moo_search.recommender.trial",
    "run_study": "moo_search.drivers",
    "load_study": "moo_search.study",
    "build_report": "moo_search.report",
    "export_trial": "moo_search.recommender.export",
    "load_exported": "moo_search.recommender.export",
}

if TYPE_CHECKING:  # pragma: no cover
    from moo_search.drivers import run_study
    from moo_search.recommender.export import export_trial, load_exported
    from moo_search.recommender.trial import run_trial
    from moo_search.report import build_report
    from moo_search.study import load_study


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moo_search' has no attribute {name!r}")
