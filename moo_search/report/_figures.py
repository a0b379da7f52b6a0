"""StudyData -> plotly figures, as plain dicts (no per-point validation: 10k trials stay fast):
the shared style and helpers, and the figures beside the Pareto views (``_fronts``).

Every user-provided string that plotly renders (it understands a little HTML) is escaped.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from moo_search.report._data import StudyData

__all__ = ["hv_history", "importance", "parallel", "val_vs_test"]

FRONT = "#1f77b4"
DOMINATED = "#9aa4b1"
INFEASIBLE = "#d62728"
BASELINE = "#2ca02c"
REFERENCE = "#ff7f0e"
PARALLEL_MAX_LINES = 2000
REFERENCE_MARKER: dict[str, Any] = {
    "color": REFERENCE,
    "symbol": "diamond-open",
    "size": 9,
    "line": {"width": 2, "color": REFERENCE},
}
BASE_LAYOUT: dict[str, Any] = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "template": None,
    "paper_bgcolor": "white",
    "plot_bgcolor": "#fafbfc",
    "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
    "legend": {"orientation": "h", "y": -0.12},
}


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=False)


def _label(metric: str, direction: str) -> str:
    return f"{_esc(metric)} {'↑' if direction == 'maximize' else '↓'}"


def _col(df: pd.DataFrame, name: str) -> list[Any]:
    if name not in df:
        return [None] * len(df)
    return [None if (isinstance(v, float) and not np.isfinite(v)) else v for v in df[name].tolist()]


def _groups(data: StudyData) -> list[tuple[str, pd.DataFrame, dict[str, Any]]]:
    done = data.complete
    feasible = done["feasible"].astype(bool)
    return [
        (
            "dominated",
            done[feasible & ~done["pareto"].astype(bool)],
            {"color": DOMINATED, "opacity": 0.45, "size": 5},
        ),
        (
            "infeasible",
            done[~feasible],
            {"color": INFEASIBLE, "opacity": 0.7, "size": 6, "symbol": "x"},
        ),
        (
            "Pareto front",
            done[done["pareto"].astype(bool)],
            {"color": FRONT, "opacity": 1.0, "size": 8, "line": {"width": 1, "color": "white"}},
        ),
    ]


def _baseline_points(data: StudyData) -> list[tuple[str, list[float]]]:
    out = []
    for name, res in data.baselines.items():
        vals = (res or {}).get("val") or {}
        if all(m in vals and vals[m] is not None for m in data.metrics):
            out.append((name, [float(vals[m]) for m in data.metrics]))
    return out


def _reference_text(data: StudyData) -> list[str]:
    out = []
    for p in data.reference:
        knobs = ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in p.get("knobs", {}).items())
        vals = "<br>".join(f"{_esc(m)} = {p['val'][m]:.4g}" for m in data.metrics)
        out.append(f"reference: {_esc(p['baseline'])} ({_esc(knobs)})<br>{vals}")
    return out


def _reference_values(data: StudyData, metric: str) -> list[float]:
    return [float(p["val"][metric]) for p in data.reference]


def _hover(df: pd.DataFrame, data: StudyData) -> list[str]:
    lines = []
    for _, r in df.iterrows() if len(df) < 2000 else []:
        parts = [f"trial {int(r['number'])}"]
        parts += [
            f"{_esc(m)} = {r[f'obj:{m}']:.4g}" for m in data.metrics if pd.notna(r[f"obj:{m}"])
        ]
        parts += [f"{_esc(p)} = {_esc(_fmt(r.get(f'param:{p}')))}" for p in data.params[:8]]
        lines.append("<br>".join(parts))
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def parallel(data: StudyData) -> dict[str, Any] | None:
    done = data.complete
    if done.empty:
        return None
    total = len(done)
    if total > PARALLEL_MAX_LINES:  # every front trial plus an even sample of the rest
        front = done[done["pareto"].astype(bool)]
        rest = done[~done["pareto"].astype(bool)]
        take = max(PARALLEL_MAX_LINES - len(front), 0)
        pick = np.linspace(0, len(rest) - 1, min(take, len(rest))).round().astype(int)
        done = pd.concat([rest.iloc[pick], front]).sort_values("number")
    shown = (
        ""
        if len(done) == total
        else f" · showing {len(done):,} of {total:,} trials: every front trial and an even sample of the rest"
    )
    dims = []
    for p in data.params:
        col = done.get(f"param:{p}")
        if col is None:
            continue
        if data.param_kinds[p] == "categorical":
            cats = sorted({str(v) for v in col.dropna()})
            code = {c: i for i, c in enumerate(cats)}
            dims.append(
                {
                    "label": _esc(p),
                    "values": [code.get(str(v)) for v in col],
                    "tickvals": list(range(len(cats))),
                    "ticktext": [_esc(c) for c in cats],
                }
            )
        else:
            dims.append({"label": _esc(p), "values": _col(done, f"param:{p}")})
    for m, d in zip(data.metrics, data.directions):
        dims.append({"label": _label(m, d), "values": _col(done, f"obj:{m}")})
    color = done["pareto"].astype(int).tolist()
    trace = {
        "type": "parcoords",
        "dimensions": dims,
        "line": {"color": color, "colorscale": [[0, DOMINATED], [1, FRONT]], "cmin": 0, "cmax": 1},
        # a dozen dotted paths side by side overlap when level: slanted, each reads alone
        "labelangle": -20,
        "labelside": "top",
    }
    layout = {
        **BASE_LAYOUT,
        "height": 480,
        "margin": {"l": 70, "r": 70, "t": 120, "b": 30},
        "title": {"text": f"Parameters and objectives (blue: Pareto front){shown}"},
    }
    return {"data": [trace], "layout": layout}


def hv_history(data: StudyData) -> dict[str, Any] | None:
    xs, ys = data.hv_history
    if not xs:
        return None
    ref = ", ".join(f"{v:.4g}" for v in (data.reference_point or []))
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": xs,
        "y": ys,
        "name": "hypervolume",
        "line": {"color": FRONT, "shape": "hv"},
        "marker": {"size": 4},
    }
    layout = {
        **BASE_LAYOUT,
        "height": 340,
        "title": {"text": f"Hypervolume over trials (reference point: {ref})"},
        "xaxis": {"title": {"text": "trial number"}},
        "yaxis": {"title": {"text": "hypervolume"}},
    }
    return {"data": [trace], "layout": layout}


def importance(data: StudyData) -> dict[str, Any] | None:
    if not data.importance:
        return None
    traces = []
    for m, scores in data.importance.items():
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": _esc(m),
                "y": [_esc(p) for p in scores],
                "x": list(scores.values()),
            }
        )
    layout = {
        **BASE_LAYOUT,
        "height": 120 + 40 * len(data.params) * max(1, len(traces)) // 2,
        "barmode": "group",
        "title": {"text": "Parameter importance per objective (share of variance explained, η²)"},
        "xaxis": {"title": {"text": "importance"}},
        "margin": {"l": 170, "r": 20, "t": 40, "b": 50},
    }
    return {"data": traces, "layout": layout}


def val_vs_test(data: StudyData) -> dict[str, Any] | None:
    metrics = data.test_metrics
    if not metrics or data.front.empty:
        return None
    traces: list[dict[str, Any]] = []
    layout: dict[str, Any] = {
        **BASE_LAYOUT,
        "height": 360,
        "title": {
            "text": "Did the front hold on test? (validation vs test, front trials; dashed: y = x)"
        },
        "grid": {"rows": 1, "columns": len(metrics), "pattern": "independent"},
    }
    front = data.front
    for i, m in enumerate(metrics, start=1):
        x, y = _col(front, f"obj:{m}"), _col(front, f"test:{m}")
        vals = [v for v in x + y if v is not None]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        ax = "" if i == 1 else str(i)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": x,
                "y": y,
                "xaxis": f"x{ax}",
                "yaxis": f"y{ax}",
                "customdata": front["number"].astype(int).tolist(),
                "name": _esc(m),
                "showlegend": False,
                "marker": {"color": FRONT, "size": 8},
                "text": [f"trial {n}" for n in front["number"]],
                "hoverinfo": "text+x+y",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": [lo, hi],
                "y": [lo, hi],
                "xaxis": f"x{ax}",
                "yaxis": f"y{ax}",
                "showlegend": False,
                "hoverinfo": "skip",
                "line": {"dash": "dash", "color": "#888", "width": 1},
            }
        )
        layout[f"xaxis{ax}"] = {"title": {"text": f"{_esc(m)} (val)"}}
        layout[f"yaxis{ax}"] = {"title": {"text": f"{_esc(m)} (test)"}}
    return {"data": traces, "layout": layout}
