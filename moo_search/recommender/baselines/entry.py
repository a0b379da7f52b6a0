"""The record a ranking baseline registers as (``BASELINES``), built-ins and a plugin's alike::

    BASELINES.register("Mine", Baseline(fit=my_fit, description="..."))

Its flags say where a study records it; a bare ``fit`` function still registers (read as a
baseline every study records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Baseline"]


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """A ranking baseline: ``fit(BaselineContext) -> Scorer`` (users -> scores over the
    catalog), recorded by every study it applies to, put through the re-rankers onto the
    reference front, shown on the dashboard."""

    fit: Callable[[Any], Any]
    description: str = ""
    cold_only: bool = False
    """Recorded only under the item-cold protocol (it differs from another baseline only
    there: the hybrid is EASE when every item is warm)."""
    catalog: Literal["any", "dense", "large"] = "any"
    """``dense``: only where a dense items x items EASE fits; ``large``: only where it does
    not (SANSA stands in for EASE)."""
    requires: tuple[str, ...] = ()
    """Modules its fit imports from an extra (``("sansa",)``): left out where one is missing."""
    adapted_from: Any = None  # the bare function a plugin registered, wrapped (compat)

    @classmethod
    def of(cls, fit: Any) -> Baseline:
        """A bare ``fit`` registered as before baselines were records: every study records it."""
        return cls(fit=fit, description=(fit.__doc__ or "").strip(), adapted_from=fit)

    def applies(self, *, cold_items: bool, dense_fits: bool) -> bool:
        """Whether a study with (or without) held-out items, on a catalog where dense EASE
        fits (or not), records this baseline (with what it requires installed)."""
        import importlib.util

        if self.cold_only and not cold_items:
            return False
        if any(importlib.util.find_spec(m) is None for m in self.requires):
            return False
        return self.catalog == "any" or (self.catalog == "dense") == dense_fits
