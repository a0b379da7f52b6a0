"""StudyData + figures -> one self-contained HTML page (plotly.js inline, no network).

The page is three package files, ``assets/page.html``, ``page.css`` and ``page.js``, inlined
at build time with the typed payload (:class:`~moo_search.report._payload.Payload`).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from moo_search.report._data import StudyData
from moo_search.report._payload import BestValue, Payload, Row
from moo_search.report._registry import FAILED, FIGURES, figure_sections
from moo_search.stats import finite_or_none, jsonable

__all__ = ["render_page"]


def _best(data: StudyData) -> dict[str, BestValue]:
    done = data.complete[data.complete["feasible"].astype(bool)]
    out: dict[str, BestValue] = {}
    for m, d in zip(data.metrics, data.directions):
        col = done[f"obj:{m}"].astype(float)
        if col.notna().any():
            i = col.idxmax() if d == "maximize" else col.idxmin()
            out[m] = {"value": float(col[i]), "trial": int(done.loc[i, "number"])}
    return out


def _extra_metrics(data: StudyData) -> list[str]:
    """Validation metrics and costs beyond the objectives (slices left out), for the table."""
    cols = [c for c in data.rows.columns if c.startswith(("val:", "cost:")) and "/" not in c]
    return [c for c in cols if c.removeprefix("val:") not in data.metrics]


def _rows(data: StudyData) -> list[Row]:
    rows = data.rows
    obj_cols = [f"obj:{m}" for m in data.metrics]
    test_cols = [f"test:{m}" for m in data.metrics]
    extra = _extra_metrics(data)
    out: list[Row] = []
    recs = rows.to_dict("records")
    for r in recs:
        out.append(
            {
                "n": int(r["number"]),
                "state": r["state"],
                "anchor": r.get("anchor") or "",
                "derived_from": _int(r.get("derived_from")),
                "feasible": bool(r["feasible"]),
                "pareto": bool(r["pareto"]),
                "reason": r.get("reason") or "",
                "obj": [finite_or_none(r.get(c)) for c in obj_cols],
                "test": [finite_or_none(r.get(c)) for c in test_cols],
                "params": {p: _val(r.get(f"param:{p}")) for p in data.params},
                "m": [finite_or_none(r.get(c)) for c in extra],
                "secs": finite_or_none(r.get("duration")),
                "gen": _int(r.get("generation")),
                "artifacts": str(r.get("artifacts") or ""),
                "artifact_problem": str(r.get("artifact_problem") or ""),
                "curve": r.get("curve") if isinstance(r.get("curve"), list) else None,
            }
        )
    return out


def _int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _val(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' at all (so no '</script' and no '<!--'
    script-data states), no raw U+2028/2029."""
    text = json.dumps(jsonable(obj, digits=6), separators=(",", ":"), allow_nan=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def render_page(data: StudyData, figs: dict[str, dict[str, Any]], plotly_js: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.name).strip("-") or "study"
    target = data.study_target
    export_base = f"moo-search export {target}"  # shell-quoted by build_report
    payload: Payload = {
        "study": data.name,
        "metrics": data.metrics,
        "directions": data.directions,
        "counts": data.counts,
        "hv": data.hypervolume,
        "reference_hv": data.reference_hv,
        "reference_points": len(data.reference),
        "reference_obj": [[p["val"][m] for m in data.metrics] for p in data.reference],
        "front_undominated": data.front_undominated,
        "reference_test": data.reference_test,
        "reference_axes": data.reference_axes,
        "reference_verdict": data.reference_verdict,
        "reference_knobs": data.extras.reference_knobs,
        "panel": {
            "cards": [dataclasses.asdict(c) for c in data.panel.cards],
            "trial_tables": {
                str(n): dataclasses.asdict(t) for n, t in data.panel.trial_tables.items()
            },
        },
        "ref": data.reference_point,
        "best": _best(data),
        "params": data.params,
        "rows": _rows(data),
        "base_config": data.base_config,
        "export_base": export_base,
        "slug": slug,
        "knee": data.knee,
        "compromise": data.compromise,
        "pseudo_weights": {str(k): v for k, v in data.pseudo_weights.items()},
        "tradeoffs": data.tradeoffs,
        "figures": figs,
        "figure_specs": [
            {"id": f.id, "empty": FAILED.get(f.id, f.empty), "eager": f.eager}
            for _, f in FIGURES.items()
        ],
        "baselines": {k: (v or {}).get("val", {}) for k, v in data.baselines.items()},
        "extra_metrics": [
            c.replace("val:", "").replace("cost:", "cost/") for c in _extra_metrics(data)
        ],
    }
    parts = {
        "TITLE": html.escape(f"moo-search · {data.name}"),
        "STUDY": html.escape(data.name),
        "PAYLOAD": _script_json(payload),
        "PLOTLY": plotly_js.replace("</script", "<\\/script"),
        "STYLE": _asset("page.css"),
        "SCRIPT": _asset("page.js"),
        "FRONT": figure_sections([f for _, f in FIGURES.items()][:1]),
        "FIGURES": figure_sections([f for _, f in FIGURES.items()][1:]),
    }
    # one pass over the template: text substituted in (a study named %%PLOTLY%%) is never
    # scanned again
    return re.sub(r"%%([A-Z]+)%%", lambda m: parts[m[1]], _asset("page.html"))


@cache
def _asset(name: str) -> str:
    """A page file shipped in ``moo_search/report/assets``."""
    return resources.files("moo_search.report").joinpath("assets", name).read_text("utf-8")
