"""moo-search: multi-objective Pareto search over PEFT fine-tunes of LM recommenders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moo_search.errors import (
    DataError,
    ExportError,
    MooSearchError,
    SpecError,
    StorageError,
    TrialFailed,
)
from moo_search.spec import StudySpec, load_spec

__version__ = "0.1.0"

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
    "run_trial": "moo_search.trial",
    "run_study": "moo_search.drivers",
    "load_study": "moo_search.study",
    "build_report": "moo_search.report",
    "export_trial": "moo_search.export",
    "load_exported": "moo_search.export",
}

if TYPE_CHECKING:  # pragma: no cover
    from moo_search.drivers import run_study
    from moo_search.export import export_trial, load_exported
    from moo_search.report import build_report
    from moo_search.study import load_study
    from moo_search.trial import run_trial


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moo_search' has no attribute {name!r}")
