"""StudyData -> plotly figures, as plain dicts (no per-point validation: 10k trials stay fast).

Every user-provided string that plotly renders (it understands a little HTML) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moo_search.report._data import StudyData

__all__ = ["figures"]

FRONT = "#1f77b4"
DOMINATED = "#9aa4b1"
INFEASIBLE = "#d62728"
BASELINE = "#2ca02c"
REFERENCE = "#ff7f0e"
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
    base = _baseline_points(data)
    if base:
        traces.append(
            {
                "type": "splom",
                "name": "baselines",
                "showupperhalf": False,
                "diagonal": {"visible": False},
                "dimensions": [{**dims[i], "values": [b[1][i] for b in base]} for i in range(m)],
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
                "name": "reference front (baselines × re-ranking)",
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
                "name": "reference front (baselines × re-ranking)",
                "x": [_reference_values(data, a)[j] for j in order],
                "y": [_reference_values(data, b)[j] for j in order],
                "text": [_reference_text(data)[j] for j in order],
                "hoverinfo": "text",
                "customdata": [-1] * len(order),
                "marker": REFERENCE_MARKER,
                "line": {"color": REFERENCE, "dash": "dot", "width": 1, "shape": "hv"},
            }
        )
    layout = {
        **BASE_LAYOUT,
        "height": 460,
        "hovermode": "closest",
        "title": {"text": "Pareto front (validation)"},
        "xaxis": {"title": {"text": _label(a, data.directions[0])}, "gridcolor": "#e5e8ec"},
        "yaxis": {"title": {"text": _label(b, data.directions[1])}, "gridcolor": "#e5e8ec"},
    }
    return {"data": traces, "layout": layout}


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


PARALLEL_MAX_LINES = 2000


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
    }
    layout = {
        **BASE_LAYOUT,
        "height": 440,
        "margin": {"l": 70, "r": 70, "t": 80, "b": 30},
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


@dataclass(frozen=True)
class Figure:
    """One figure of the page: the registry below drives both the Python build and the page
    (its section, its title, what it says when there is nothing to draw).

    Attributes:
        id: The element id the figure is drawn into.
        build: StudyData -> plotly figure dict, or None when there is nothing to show.
        empty: The text shown instead of a figure that was not built.
        half: Drawn at half width, beside the next half-width figure.
        note: A line of explanation under the title.
        controls: Id of a controls row above the plot (filled by the page's script).
        eager: Drawn at load; the others are drawn when they come near the viewport.
    """

    id: str
    title: str
    build: Callable[[StudyData], dict[str, Any] | None]
    empty: str = "Nothing to show yet: no complete trials with the data this view needs."
    half: bool = False
    note: str = ""
    controls: str | None = None
    eager: bool = False


def _front(data: StudyData) -> dict[str, Any] | None:
    if data.complete.empty:
        return None
    if len(data.metrics) == 2:
        return pareto_2d(data)
    return pareto_matrix(data) if len(data.metrics) > 2 else None


FIGURES: list[Figure] = [
    Figure(
        "fig-front",
        "Pareto front",
        _front,
        note="Blue: non-dominated feasible trials · grey: dominated · red ×: infeasible "
        "(violates a constraint) · green ★: baselines · orange ◇: reference front (every "
        "baseline through the same re-rankers). Click a point to inspect it.",
        eager=True,
    ),
    Figure(
        "fig-3d",
        "Three objectives",
        front_3d,
        empty="Needs at least three objectives.",
        controls="axes-3d",
    ),
    Figure("fig-parallel", "Parallel coordinates", parallel),
    Figure("fig-hv", "Hypervolume history", hv_history, half=True),
    Figure("fig-importance", "Parameter importance", importance, half=True),
    Figure("fig-valtest", "Validation vs test", val_vs_test),
]
"""Every figure of the dashboard, in page order (the first sits above the workbench)."""


def figures(data: StudyData) -> dict[str, dict[str, Any]]:
    """Every figure the page shows, by element id (figures with nothing to show are left out)."""
    built = {f.id: f.build(data) for f in FIGURES}
    return {k: v for k, v in built.items() if v is not None}


def figure_sections(figs: list[Figure]) -> str:
    """The page's ``<section>`` of each figure (two half-width ones share a row)."""

    def section(f: Figure) -> str:
        note = f'\n    <div class="note">{html.escape(f.note)}</div>' if f.note else ""
        controls = f'\n    <div class="controls" id="{f.controls}"></div>' if f.controls else ""
        return (
            f'  <section id="sec-{f.id.removeprefix("fig-")}">\n    <h2>{html.escape(f.title)}</h2>'
            f'{note}{controls}\n    <div id="{f.id}"></div>\n  </section>'
        )

    out: list[str] = []
    i = 0
    while i < len(figs):
        if figs[i].half and i + 1 < len(figs) and figs[i + 1].half:
            out.append(
                f'  <div class="grid2">\n{section(figs[i])}\n{section(figs[i + 1])}\n  </div>'
            )
            i += 2
        else:
            out.append(section(figs[i]))
            i += 1
    return "\n".join(out)
