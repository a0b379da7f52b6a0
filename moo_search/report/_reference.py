"""The study's front against its reference front (the baselines through the inference knobs the study searches): the
hypervolumes at the same reference point and the points no baseline dominates, on validation
(as the driver chose) and on test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from moo_search import pareto

if TYPE_CHECKING:
    from moo_search.report._data import StudyData

__all__ = ["compare_reference"]


def compare_reference(data: StudyData, stored: dict[str, Any] | None) -> None:
    """Reference-front points with every objective, their HV at the study's reference point,
    and how many front trials none of them dominates."""
    points = [
        p
        for p in (stored or {}).get("points", [])
        if all(p.get("val", {}).get(m) is not None for m in data.metrics)
    ]
    data.reference = points
    data.reference_axes = (stored or {}).get("axes") or {}
    if not points:
        return
    G = np.array([[p["val"][m] for m in data.metrics] for p in points], dtype=np.float64)
    if data.reference_point is not None:
        data.reference_hv = pareto.hypervolume(G, data.reference_point, data.directions)
    front = data.front
    if len(front):
        F = front[[f"obj:{m}" for m in data.metrics]].to_numpy(dtype=np.float64)
        data.front_undominated = int((~pareto.dominated_by(F, G, data.directions)).sum())
    else:
        data.front_undominated = 0
    _compare_on_test(data, points)


def _compare_on_test(data: StudyData, points: list[dict[str, Any]]) -> None:
    """The study's front and the reference front, both chosen on validation, judged on test."""
    cols = [f"test:{m}" for m in data.metrics]
    front = data.front
    tested = [p for p in points if all(p.get("test", {}).get(m) is not None for m in data.metrics)]
    if data.reference_point is None or not tested or not all(c in front for c in cols):
        return
    F = front[cols].dropna().to_numpy(dtype=np.float64)
    if not len(F):
        return
    G = np.array([[p["test"][m] for m in data.metrics] for p in tested], dtype=np.float64)
    data.reference_test = {
        "hv": pareto.hypervolume(F, data.reference_point, data.directions),
        "reference_hv": pareto.hypervolume(G, data.reference_point, data.directions),
        "undominated": int((~pareto.dominated_by(F, G, data.directions)).sum()),
        "n_front": len(F),
    }
