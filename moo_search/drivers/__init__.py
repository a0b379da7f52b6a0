"""Study drivers (Optuna, pymoo) over one Optuna storage.

``run_study(spec)`` creates or resumes a study and runs it to its budget; ``run_worker`` and
``run_workers`` join a running study from any host. Each driver is a :class:`BaseDriver`
registered in :data:`moo_search.registry.DRIVERS`; how a study is stored lives in
:mod:`moo_search.study`.
"""

from __future__ import annotations

from moo_search.drivers._base import BaseDriver
from moo_search.drivers._context import StudyContext, StudyProgress
from moo_search.drivers._optuna import OptunaDriver
from moo_search.drivers._pymoo import PymooDriver
from moo_search.drivers._run import run_study, run_worker, run_workers
from moo_search.objective import Evaluation
from moo_search.registry import DRIVERS

__all__ = [
    "DRIVERS",
    "BaseDriver",
    "Evaluation",
    "OptunaDriver",
    "PymooDriver",
    "StudyContext",
    "StudyProgress",
    "run_study",
    "run_worker",
    "run_workers",
]
