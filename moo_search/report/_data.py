"""Study -> tidy data: one row per trial, plus what the page needs besides the rows.

This is the report's pure data step; rendering lives in ``_registry`` (figures) and ``_html`` (the page).
Everything here is read from the Optuna storage (user attributes written by the drivers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from moo_search import pareto
from moo_search.objective import Panel, ReportExtras, objective_for
from moo_search.registry import load_plugins
from moo_search.report._decide import decide, param_importance
from moo_search.report._reference import compare_reference
from moo_search.spec import DEFAULT_OBJECTIVE
from moo_search.study import ATTR, STUDY_ATTR

__all__ = ["StudyData", "collect"]


@dataclass
class StudyData:
    name: str
    metrics: list[str]  # objective metric names
    directions: list[str]
    rows: pd.DataFrame  # one row per trial
    params: list[str]
    param_kinds: dict[str, str]  # "float" | "int" | "categorical"
    reference_point: list[float] | None
    hypervolume: float | None
    hv_history: tuple[list[int], list[float]]
    baselines: dict[str, dict[str, dict[str, float]]]
    base_config: dict[str, Any] | None
    study_target: str  # what to pass to `moo-search export`
    counts: dict[str, int] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    knee: int | None = None  # trial numbers
    compromise: int | None = None
    pseudo_weights: dict[int, list[float]] = field(default_factory=dict)
    tradeoffs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    test_metrics: list[str] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)  # reference-front points
    reference_hv: float | None = None  # same reference point as ``hypervolume``
    front_undominated: int | None = None  # front trials no reference point dominates
    # the same comparison on test (both fronts chosen on validation): {"hv", "reference_hv",
    # "undominated", "n_front"}; None when a front lacks test values
    reference_test: dict[str, Any] | None = None
    reference_axes: dict[str, list[float]] = field(default_factory=dict)  # knob: [lo, hi, n]
    extras: ReportExtras = field(default_factory=ReportExtras)  # what the objective adds
    panel: Panel = field(default_factory=Panel)  # what the objective draws (its own words)

    @property
    def artifact_problems(self) -> list[str]:
        """One line per distinct altered artifact (files that are not the trial's own)."""
        if "artifacts" not in self.rows:
            return []
        bad = self.rows[self.rows["artifacts"] == "altered"]
        return sorted(set(bad["artifact_problem"]))

    def comparison_lines(self) -> list[str]:
        """The lines that say whether the study adds anything over its baselines (the
        objective's own among them, :class:`~moo_search.objective.Panel`), and a warning per
        altered artifact."""
        warn = [f"warning: {p}" for p in self.artifact_problems]
        return self._reference_lines() + list(self.panel.lines) + warn

    def _reference_lines(self) -> list[str]:
        if not self.reference:  # said only where baselines were recorded without their front
            return ["reference front: none recorded"] if self.baselines else []
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        n_front = int(self.rows["pareto"].sum()) if "pareto" in self.rows else 0
        grid = ", ".join(
            f"{k.split('.')[-1]} {lo:g}-{hi:g}" for k, (lo, hi, _) in self.reference_axes.items()
        )
        lines = [
            f"hypervolume: study {fmt(self.hypervolume)} vs reference front "
            f"{fmt(self.reference_hv)} ({len(self.reference)} baseline points, same reference point"
            + (f"; {self.extras.reference_knobs} over {grid}" if grid else "")
            + ")",
            f"front trials not dominated by any reference point: "
            f"{self.front_undominated or 0} of {n_front}",
        ]
        lines += self.panel.reference_lines
        t = self.reference_test
        if t:
            lines.append(
                f"on test (both fronts chosen on validation): hypervolume study {fmt(t['hv'])} "
                f"vs reference front {fmt(t['reference_hv'])}; front trials not dominated: "
                f"{t['undominated']} of {t['n_front']}"
            )
        lines.append(self.reference_verdict)
        return lines

    @property
    def reference_verdict(self) -> str:
        """One plain sentence: does the study's front or the baselines' win, on validation
        and on test (by hypervolume at the same reference point)?"""
        wins = []
        for split, hv, ref in (
            ("validation", self.hypervolume, self.reference_hv),
            *(
                [("test", self.reference_test["hv"], self.reference_test["reference_hv"])]
                if self.reference_test
                else []
            ),
        ):
            if hv is None or ref is None:
                continue
            who = "the study" if hv > ref else "the reference front (the baselines)"
            wins.append(f"{who} on {split}")
        return "larger hypervolume: " + (", ".join(wins) if wins else "nothing to compare yet")

    @property
    def complete(self) -> pd.DataFrame:
        return self.rows[self.rows["state"] == "COMPLETE"]

    @property
    def front(self) -> pd.DataFrame:
        return self.rows[self.rows["pareto"]]


def _generation(t: Any) -> int | None:
    if ATTR.GENERATION in t.user_attrs:
        return int(t.user_attrs[ATTR.GENERATION])
    for k, v in t.system_attrs.items():
        if k.endswith(":generation"):
            return int(v)
    return None


def collect(study: Any, *, study_target: str = "STUDY", verify_artifacts: bool = True) -> StudyData:
    """Read every trial of ``study`` into a :class:`StudyData`.

    With ``verify_artifacts`` every complete trial's artifact files are checked against the
    SHA-256 it recorded: a trial whose files are altered is flagged (never silently shown as
    exportable) and listed in ``artifact_problems``.
    """
    from optuna.trial import TrialState

    spec = study.user_attrs.get(STUDY_ATTR.SPEC)
    _load_study_plugins(spec or {})
    objective = objective_for(str((spec or {}).get("objective") or DEFAULT_OBJECTIVE))
    extras = objective.report_extras(study)
    objectives = study.user_attrs.get(STUDY_ATTR.OBJECTIVES) or [
        {"metric": f"objective {i}", "direction": d.name.lower()}
        for i, d in enumerate(study.directions)
    ]
    metrics = [o["metric"] for o in objectives]
    directions = [o["direction"] for o in objectives]
    trials = study.get_trials(deepcopy=False)
    params = _param_kinds(trials, extras)
    checked: dict[Any, tuple[str, str]] = {}
    records = [_record(t, metrics, extras, checked if verify_artifacts else None) for t in trials]
    rows = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=_COLUMNS)
    for name in params:  # a served-weight column: every trial's, as trained where not swept
        if f"served:{name}" in rows:
            rows[f"param:{name}"] = rows[f"served:{name}"]
    counts = {s.name: int((rows["state"] == s.name).sum()) for s in TrialState}
    ok, F = _mark_front(rows, metrics, directions)
    ref, hv, hv_hist = _hypervolumes(
        F, directions, study.user_attrs.get(STUDY_ATTR.REFERENCE), rows.loc[ok, "number"]
    )
    if not extras.shows_config:
        spec = None  # the config means nothing to this objective: show params only
    data = StudyData(
        name=study.study_name,
        metrics=metrics,
        directions=directions,
        rows=rows,
        params=list(params),
        param_kinds=params,
        reference_point=ref,
        hypervolume=hv,
        hv_history=hv_hist,
        baselines=study.user_attrs.get(STUDY_ATTR.BASELINES) or {},
        base_config=spec,
        study_target=study_target,
        counts=counts,
        extras=extras,
    )
    compare_reference(data, study.user_attrs.get(STUDY_ATTR.REFERENCE_FRONT))
    decide(data)
    data.importance = param_importance(data)
    data.test_metrics = [m for m in metrics if f"test:{m}" in rows.columns]
    data.panel = objective.report_panel(study, data)
    return data


_COLUMNS = [
    "number",
    "state",
    "feasible",
    "violation",
    "reason",
    "anchor",
    "derived_from",
    "generation",
    "duration",
    "artifact_dir",
    "artifacts",
    "artifact_problem",
    "curve",
]
"""The rows' columns when the study has no trial yet."""


def _mark_front(
    rows: pd.DataFrame, metrics: list[str], directions: list[str]
) -> tuple[pd.Series, np.ndarray]:
    """Mark the Pareto front of the feasible complete trials (column ``pareto``); (their
    mask, their objective values)."""
    obj_cols = [f"obj:{m}" for m in metrics]
    for c in obj_cols:
        if c not in rows:
            rows[c] = np.nan
    ok = (rows["state"] == "COMPLETE") & rows["feasible"].astype(bool)
    F = rows.loc[ok, obj_cols].to_numpy(dtype=np.float64)
    rows["pareto"] = False
    if len(F):
        rows.loc[ok, "pareto"] = pareto.pareto_mask(F, directions)
    return ok, F


def _hypervolumes(
    F: np.ndarray, directions: list[str], ref: list[float] | None, numbers: pd.Series
) -> tuple[list[float] | None, float | None, tuple[list[int], list[float]]]:
    """(reference point, hypervolume, its history by trial number) of the feasible complete
    trials' objective values ``F``; the reference point is the study's, else derived."""
    if not len(F):
        return ref, None, ([], [])
    if ref is None:
        ref = pareto.default_reference_point(F, directions).tolist()
    hv = pareto.hypervolume(F, ref, directions)
    pos, vals = pareto.hypervolume_history(F, ref, directions, max_points=300)
    nums = numbers.to_numpy()
    return ref, hv, ([int(nums[p]) for p in pos], [float(v) for v in vals])


def _load_study_plugins(spec: dict[str, Any]) -> None:
    """The study's ``plugins`` (its own objective, figures ...); one that cannot be imported
    here is a warning: the page is built without what it registers."""
    import logging

    from moo_search.errors import SpecError

    try:
        load_plugins(list(spec.get("plugins") or []))
    except SpecError as e:
        logging.getLogger("moo_search").warning("%s; the report is built without it", e)


def _param_kinds(trials: list[Any], extras: ReportExtras) -> dict[str, str]:
    """Every searched param's kind (float, int, categorical), and the served knobs' columns."""
    params: dict[str, str] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if name not in params:
                kind = type(dist).__name__
                params[name] = (
                    "categorical" if "Categorical" in kind else "int" if "Int" in kind else "float"
                )
        for name in t.user_attrs.get(ATTR.KNOBS) or {}:
            if name in extras.served_knobs:  # a column: what each trial is served at
                params.setdefault(name, "float")
    return params


def _record(
    t: Any, metrics: list[str], extras: ReportExtras, checked: dict[Any, tuple[str, str]] | None
) -> dict[str, Any]:
    """One trial's row: state, feasibility, objective values, params, served knobs, metrics,
    cost; its artifacts checked when ``checked`` (a cache shared by the study's trials)."""
    from optuna.trial import TrialState

    from moo_search.study import artifact_status

    m = t.user_attrs.get(ATTR.METRICS) or {}
    cons = t.user_attrs.get(ATTR.CONSTRAINTS) or []
    rec: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "feasible": not any(v > 0 for v in cons),
        "violation": float(max(cons)) if cons else 0.0,
        "reason": str(t.user_attrs.get(ATTR.FAIL, "")),
        "anchor": str(t.user_attrs.get(ATTR.ANCHOR, "")),
        "derived_from": t.user_attrs.get(ATTR.DERIVED_FROM),
        "generation": _generation(t),
        "duration": t.duration.total_seconds() if t.duration is not None else None,
        "artifact_dir": t.user_attrs.get(ATTR.ARTIFACTS),
        "artifacts": "",
        "artifact_problem": "",
        "curve": t.user_attrs.get(ATTR.CURVE),
    }
    complete = t.state == TrialState.COMPLETE
    if checked is not None and complete:
        rec["artifacts"], rec["artifact_problem"] = artifact_status(t, checked)
    for i, name in enumerate(metrics):
        rec[f"obj:{name}"] = t.values[i] if complete and t.values else None
    for name, v in t.params.items():
        rec[f"param:{name}"] = v
    config = t.user_attrs.get(ATTR.CONFIG) or {}
    for knob, trained in extras.served_knobs.items():
        served = _at(config, knob)
        rec[f"served:{knob}"] = served if served is not None else _at(config, trained)
    for part in ("val", "test"):
        for k, v in (m.get(part) or {}).items():
            rec[f"{part}:{k}"] = v
    for k, v in (t.user_attrs.get(ATTR.COST) or {}).items():
        rec[f"cost:{k}"] = v
    return rec


def _at(config: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a trial's config, or None."""
    node: Any = config
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
