"""Bounded memory for large catalogs: when a dense users x items score matrix is kept.

A trial, the reference front and the baselines score every user over the catalog more than
once (the plain lists, then each re-ranked variant). Up to :data:`SCORES_BUDGET_GB` the
scores are computed once and kept as one float32 matrix; beyond it (a 10^4-10^5 item
catalog) they are recomputed chunk by chunk whenever they are needed, so memory stays at a
chunk of users. A user's scores do not depend on which other users are scored with them, so
both ways give the same lists and the same metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "SCORES_BUDGET_GB",
    "PeakRSS",
    "available_bytes",
    "budget_gb",
    "keep_scores",
    "scores_fit",
]

logger = logging.getLogger("moo_search")

SCORES_BUDGET_GB = 1.0
"""The largest users x items float32 matrix kept in memory (``MOO_SEARCH_SCORES_GB``)."""


def budget_gb(variable: str, default: float) -> float:
    """A memory budget in GiB from the environment ``variable`` (``default`` when unset); a
    value that is not a number >= 0 is a SpecError naming the variable and the value."""
    import math

    from moo_search.errors import SpecError

    raw = os.environ.get(variable)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise SpecError(
            f"{variable}={raw!r}: expected a number of GiB (0 or more), such as {default:g} "
            "(the default); unset it to use the default"
        )
    return value


def available_bytes() -> int:
    """The memory the machine has available now (``MemAvailable``; 4 GiB where /proc is
    missing)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


KEEP_CHUNK = 1 << 24
"""Scores computed at a time while a matrix is kept (users x items entries; a scorer's float64
temporaries are several times this): a whole 10^4-item catalog's users at once held ~6 GiB."""


def scores_fit(n_rows: int, n_cols: int) -> bool:
    """Whether an (n_rows, n_cols) float32 matrix fits the budget."""
    return 4 * n_rows * n_cols <= budget_gb("MOO_SEARCH_SCORES_GB", SCORES_BUDGET_GB) * 2**30


def keep_scores(
    score: Callable[[np.ndarray], np.ndarray], n_users: int, n_items: int
) -> Callable[[np.ndarray], np.ndarray]:
    """``score`` as float32: computed once for every user (:data:`KEEP_CHUNK` entries at a
    time) and kept when the matrix fits the budget, else recomputed on each call (the
    evaluation asks for a chunk of users at a time: ``eval.batch_size``)."""
    if not scores_fit(n_users, n_items):
        logger.info(
            "scores of %d users x %d items are over the %s GiB budget: scored per chunk",
            n_users,
            n_items,
            budget_gb("MOO_SEARCH_SCORES_GB", SCORES_BUDGET_GB),
        )
        return lambda users: np.asarray(score(users), dtype=np.float32)
    table = np.empty((n_users, n_items), dtype=np.float32)
    step = max(1, KEEP_CHUNK // max(n_items, 1))  # a scorer's temporaries stay per chunk
    for start in range(0, n_users, step):
        users = np.arange(start, min(start + step, n_users))
        table[users] = score(users)
    return lambda users: table[users]


class PeakRSS:
    """The peak resident memory of this process while the block runs, in MiB
    (``with PeakRSS() as peak: ...; peak.mib``): sampled every ``interval`` seconds from
    ``/proc/self/statm`` (Linux), else the process's lifetime peak (``ru_maxrss``)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.mib = 0.0
        self._stop: Any = None
        self._thread: Any = None

    @staticmethod
    def current() -> float | None:
        """This process's resident memory now, in MiB (None where /proc is missing)."""
        try:
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.mib = max(self.mib, self.current() or 0.0)

    def __enter__(self) -> PeakRSS:
        import threading

        now = self.current()
        if now is not None:
            self.mib = now
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.mib = max(self.mib, self.current() or 0.0)
        else:
            import resource

            self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
