"""What the recommender records beyond its metrics, by name, and the panel it draws from those
records on its study's dashboard (:class:`moo_search.objective.Panel`).

A trial records its backbone (``backbone``: what an export ships) and its per-user test hits
(``test_hits``: ``{"k", "all", "tail"}``, packed counts); the study records the same hits for
its collaborative baselines (``moo:baseline_test_hits``). The panel pairs the front's most
accurate trial with EASE (SANSA where the catalog was too large for dense EASE) user by user,
with a bootstrap interval, shows that pairing under every selected trial, and counts the trials
whose test conversion AUC beats the like-rate baseline's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from moo_search.objective import Card, Panel, TrialTable
from moo_search.stats import paired_bootstrap, verdict
from moo_search.study import record_key, unpack_counts

__all__ = ["BACKBONE_RECORD", "BASELINE_HITS", "HITS_RECORD", "draw_panel"]

BACKBONE_RECORD = "backbone"
HITS_RECORD = "test_hits"
BASELINE_HITS = "moo:baseline_test_hits"
"""The study attribute: ``{baseline: hits, "n_users", "tail_users"}`` on the same test users."""

_SCORE = ("LikeRate", "conversion_auc", "like-rate")  # (baseline, test metric, its label)
_OLD_SCORE = "ctr_auc"  # the metric's name in studies run before it was conversion_auc


def draw_panel(study: Any, data: Any) -> Panel:
    """The recommender's panel of ``study`` (``data``: the report's view of it)."""
    recorded = study.user_attrs.get(BASELINE_HITS) or {}
    baseline = "SANSA" if "SANSA" in recorded and "EASE" not in recorded else "EASE"
    per_trial = _pair_with_baseline(study, data.rows, recorded, baseline)
    top = _front_top(data.rows, per_trial)
    score = _score_against(data)
    facts = {"vs_baseline": top, "vs_trials": per_trial, "ctr_vs_baseline": score}
    return Panel(
        reference_lines=(_vs_line(top),) if top else (),
        lines=(_score_line(score),) if score else (),
        cards=tuple(c for c in (_vs_card(top), _score_card(score)) if c),
        trial_tables={n: _vs_table(vs) for n, vs in per_trial.items()},
        facts=facts,
    )


def _pair_with_baseline(
    study: Any, rows: pd.DataFrame, recorded: dict[str, Any], baseline: str
) -> dict[int, dict[str, Any]]:
    """Every fine-tune and front trial paired with ``baseline`` on the same test users: the
    difference in test precision@k (``"all"``) and tail/precision@k (``"tail"``) with its 95%
    bootstrap interval over users, by trial number (``{"baseline", "k", "all": [mean, lo, hi],
    "tail": [...]}``)."""
    if not recorded or baseline not in recorded or "pareto" not in rows:
        return {}
    theirs = recorded[baseline]
    tail_users = unpack_counts(recorded["tail_users"]).astype(bool)
    k = theirs["k"]
    wanted = rows["pareto"].astype(bool) | rows["derived_from"].isna()
    numbers = set(rows.loc[wanted & (rows["state"] == "COMPLETE"), "number"].astype(int))
    out: dict[int, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        mine = t.user_attrs.get(record_key(HITS_RECORD))
        if t.number not in numbers or not isinstance(mine, dict) or mine.get("k") != k:
            continue
        vs: dict[str, Any] = {"baseline": baseline, "k": k}
        for name, users in (("all", slice(None)), ("tail", tail_users)):
            a, b = unpack_counts(mine[name]), unpack_counts(theirs[name])
            if len(a) != len(b):
                break  # (not the same test users: another split)
            vs[name] = list(paired_bootstrap(a[users] / k, b[users] / k, 1000))
        else:
            out[t.number] = vs
    return out


def _front_top(rows: pd.DataFrame, per_trial: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The pairing of the front's most accurate trial on validation (the front's other end
    trades accuracy away by design: the reference front judges it)."""
    if not per_trial:
        return None
    k = next(iter(per_trial.values()))["k"]
    col = f"val:precision@{k}"
    paired = rows[rows["pareto"].astype(bool) & rows["number"].isin(list(per_trial))]
    if col not in paired or paired[col].isna().all():
        return None
    n = int(paired.loc[paired[col].astype(float).idxmax(), "number"])
    return {"trial": n, **per_trial[n]}


def _f4(v: float) -> str:
    return ("−" if v < 0 else "+") + f"{abs(v):.4f}"


def _vs_line(vs: dict[str, Any]) -> str:
    (d, lo, hi), (td, tlo, thi), k = vs["all"], vs["tail"], vs["k"]
    return (
        f"the front's most accurate trial (validation) {vs['trial']} minus "
        f"{vs['baseline']} on test, paired by user (95% interval): precision@{k} "
        f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] ({verdict(lo, hi)}), tail/precision@{k} "
        f"{td:+.4f} [{tlo:+.4f}, {thi:+.4f}] ({verdict(tlo, thi)})"
    )


def _vs_card(vs: dict[str, Any] | None) -> Card | None:
    if not vs:
        return None
    (d, lo, hi), (td, tlo, thi), k, b = vs["all"], vs["tail"], vs["k"], vs["baseline"]
    return Card(
        title=f"most accurate front trial vs {b}",
        value=_f4(d),
        detail=f"test precision@{k} of trial {vs['trial']} (best on validation) minus {b}'s, "
        f"paired by user: 95% [{_f4(lo)}, {_f4(hi)}], {verdict(lo, hi)} · tail/precision@{k} "
        f"{_f4(td)} [{_f4(tlo)}, {_f4(thi)}], {verdict(tlo, thi)}",
    )


def _vs_table(vs: dict[str, Any]) -> TrialTable:
    """A trial against the baseline on the same test users: differences and 95% intervals."""
    k = vs["k"]
    rows = tuple(
        (label, _f4(vs[key][0]), f"[{_f4(vs[key][1])}, {_f4(vs[key][2])}]", verdict(*vs[key][1:]))
        for key, label in (("all", f"precision@{k}"), ("tail", f"tail/precision@{k}"))
        if vs.get(key)
    )
    header = (f"test, minus {vs['baseline']} (same users)", "difference", "95% interval", "")
    return TrialTable(header=header, rows=rows)


def _score_against(data: Any) -> dict[str, Any] | None:
    """The fine-tunes' test conversion_auc (``ctr_auc`` in a study run before that name)
    against the like-rate baseline's: ``{"metric", "n", "min", "max", "baseline", "above",
    "below_half"}``; None without either."""
    name, metric, _ = _SCORE
    test = (data.baselines.get(name) or {}).get("test") or {}
    rows = data.rows
    if f"test:{metric}" not in rows or metric not in test:
        metric = _OLD_SCORE
    base = test.get(metric)
    if base is None or f"test:{metric}" not in rows or "state" not in rows:
        return None
    done = rows[rows["state"] == "COMPLETE"]
    if "derived_from" in done:
        done = done[done["derived_from"].isna()]  # variants share their fine-tune's head
    aucs = done[f"test:{metric}"].dropna().astype(float)
    if aucs.empty:
        return None
    return {
        "metric": metric,
        "n": len(aucs),
        "min": float(aucs.min()),
        "max": float(aucs.max()),
        "baseline": float(base),
        "above": int((aucs > base).sum()),
        "below_half": int((aucs < 0.5).sum()),
    }


def _score_line(s: dict[str, Any]) -> str:
    _, _, label = _SCORE
    metric = s["metric"]
    return (
        f"{metric} (test) of the {s['n']} fine-tunes: {s['min']:.4f} to {s['max']:.4f}; "
        f"{label} baseline {s['baseline']:.4f}; above it: {s['above']}/{s['n']}; "
        f"below 0.5: {s['below_half']}"
    )


def _score_card(s: dict[str, Any] | None) -> Card | None:
    if not s:
        return None
    _, _, label = _SCORE
    metric = s["metric"]
    return Card(
        title=f"{metric} vs {label}",
        value=f"{s['above']} of {s['n']}",
        detail=f"fine-tunes whose test {metric} ({s['min']:.4f} to {s['max']:.4f}) beats the "
        f"{label} baseline's {s['baseline']:.4f} · below 0.5: {s['below_half']}",
    )
