"""The Pareto views: every pair of objectives (2-D or a scatter matrix) and three objectives
in 3-D, with baselines and the reference front drawn beside the study's trials."""

from __future__ import annotations

from typing import Any

import numpy as np

from moo_search.report._data import StudyData
from moo_search.report._figures import (
    BASE_LAYOUT,
    BASELINE,
    REFERENCE,
    REFERENCE_MARKER,
    _baseline_points,
    _col,
    _esc,
    _groups,
    _hover,
    _label,
    _reference_text,
    _reference_values,
)

__all__ = ["front_3d", "pareto_2d", "pareto_matrix"]


def pareto_matrix(data: StudyData) -> dict[str, Any]:
    m = len(data.metrics)
    dims = [{"label": _label(a, d)} for a, d in zip(data.metrics, data.directions)]
    traces = []
    for name, df, marker in _groups(data):
        hover = _hover(df, data)
        tr: dict[str, Any] = {
            "type": "splom",
            "name": name,
            "showupperhalf": False,
            "diagonal": {"visible": False},
            "dimensions": [
                {**dims[i], "values": _col(df, f"obj:{a}")} for i, a in enumerate(data.metrics)
            ],
            "customdata": df["number"].astype(int).tolist(),
            "marker": marker,
        }
        if hover:
            tr["text"], tr["hoverinfo"] = hover, "text"
        traces.append(tr)
    traces += _baseline_and_reference_matrix(data, dims)
    size = max(360, 260 * (m - 1))
    layout = {
        **BASE_LAYOUT,
        "height": size,
        "dragmode": "select",
        "hovermode": "closest",
        "title": {"text": "Pareto fronts (validation), every pair of objectives"},
    }
    for i in range(1, m + 1):
        layout[f"xaxis{i}" if i > 1 else "xaxis"] = {"gridcolor": "#e5e8ec"}
        layout[f"yaxis{i}" if i > 1 else "yaxis"] = {"gridcolor": "#e5e8ec"}
    return {"data": traces, "layout": layout}


def _baseline_and_reference_matrix(
    data: StudyData, dims: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The baselines as stars, and the reference front, in every pair of objectives."""
    traces = []
    base = _baseline_points(data)
    if base:
        traces.append(
            {
                "type": "splom",
                "name": "baselines",
                "showupperhalf": False,
                "diagonal": {"visible": False},
                "dimensions": [
                    {**dims[i], "values": [b[1][i] for b in base]} for i in range(len(dims))
                ],
                "text": [_esc(b[0]) for b in base],
                "hoverinfo": "text",
                "customdata": [-1] * len(base),
                "marker": {
                    "color": BASELINE,
                    "symbol": "star",
                    "size": 13,
                    "line": {"width": 1, "color": "black"},
                },
            }
        )
    if data.reference:
        traces.append(
            {
                "type": "splom",
                "name": f"reference front (baselines × {data.extras.reference_knobs})",
                "showupperhalf": False,
                "diagonal": {"visible": False},
                "dimensions": [
                    {**dims[i], "values": _reference_values(data, a)}
                    for i, a in enumerate(data.metrics)
                ],
                "text": _reference_text(data),
                "hoverinfo": "text",
                "customdata": [-1] * len(data.reference),
                "marker": REFERENCE_MARKER,
            }
        )
    return traces


def pareto_2d(data: StudyData) -> dict[str, Any]:
    """For a 2-objective study: a plain scatter (splom needs >= 2 dims but reads better here)."""
    a, b = data.metrics[:2]
    traces = []
    for name, df, marker in _groups(data):
        hover = _hover(df, data)
        tr = {
            "type": "scattergl",
            "mode": "markers",
            "name": name,
            "x": _col(df, f"obj:{a}"),
            "y": _col(df, f"obj:{b}"),
            "customdata": df["number"].astype(int).tolist(),
            "marker": marker,
        }
        if hover:
            tr["text"], tr["hoverinfo"] = hover, "text"
        traces.append(tr)
    traces += _baseline_and_reference_2d(data, a, b)
    layout = {
        **BASE_LAYOUT,
        "height": 460,
        "hovermode": "closest",
        "title": {"text": "Pareto front (validation)"},
        "xaxis": {"title": {"text": _label(a, data.directions[0])}, "gridcolor": "#e5e8ec"},
        "yaxis": {"title": {"text": _label(b, data.directions[1])}, "gridcolor": "#e5e8ec"},
    }
    return {"data": traces, "layout": layout}


def _baseline_and_reference_2d(data: StudyData, a: str, b: str) -> list[dict[str, Any]]:
    """The baselines as stars, and the reference front as a dotted staircase, on the
    ``a`` x ``b`` plane."""
    traces = []
    base = _baseline_points(data)
    if base:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "baselines",
                "x": [p[1][0] for p in base],
                "y": [p[1][1] for p in base],
                "text": [_esc(p[0]) for p in base],
                "textposition": "top center",
                "customdata": [-1] * len(base),
                "marker": {
                    "color": BASELINE,
                    "symbol": "star",
                    "size": 14,
                    "line": {"width": 1, "color": "black"},
                },
            }
        )
    if data.reference:
        order = np.argsort(_reference_values(data, a))
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"reference front (baselines × {data.extras.reference_knobs})",
                "x": [_reference_values(data, a)[j] for j in order],
                "y": [_reference_values(data, b)[j] for j in order],
                "text": [_reference_text(data)[j] for j in order],
                "hoverinfo": "text",
                "customdata": [-1] * len(order),
                "marker": REFERENCE_MARKER,
                "line": {"color": REFERENCE, "dash": "dot", "width": 1, "shape": "hv"},
            }
        )
    return traces


def front_3d(data: StudyData) -> dict[str, Any] | None:
    if len(data.metrics) < 3:
        return None
    a, b, c = data.metrics[:3]
    traces = []
    for name, df, marker in _groups(data):
        mk = {k: v for k, v in marker.items() if k in ("color", "opacity", "size")}
        mk["size"] = max(2, mk.get("size", 4) - 3)
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "name": name,
                "x": _col(df, f"obj:{a}"),
                "y": _col(df, f"obj:{b}"),
                "z": _col(df, f"obj:{c}"),
                "customdata": df["number"].astype(int).tolist(),
                "marker": mk,
            }
        )
    if data.reference:
        traces.append(
            {
                "type": "scatter3d",
                "mode": "markers",
                "name": "reference front",
                "x": _reference_values(data, a),
                "y": _reference_values(data, b),
                "z": _reference_values(data, c),
                "text": _reference_text(data),
                "hoverinfo": "text",
                "customdata": [-1] * len(data.reference),
                "marker": {"color": REFERENCE, "symbol": "diamond-open", "size": 4},
            }
        )
    layout = {
        **BASE_LAYOUT,
        "height": 520,
        "title": {"text": "Three objectives in 3-D (drag to rotate)"},
        "scene": {
            "xaxis": {"title": {"text": _label(a, data.directions[0])}},
            "yaxis": {"title": {"text": _label(b, data.directions[1])}},
            "zaxis": {"title": {"text": _label(c, data.directions[2])}},
        },
    }
    return {"data": traces, "layout": layout}
