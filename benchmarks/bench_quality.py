"""Does the study's front beat the classic recommenders? A table from a finished study.

    python benchmarks/bench_quality.py [reports/quickstart] [--study-name NAME]

Reads the study (storage and recorded baselines only; nothing is trained) and prints, on the
test split: every baseline (EASE with lambda tuned on validation, ItemKNN, BPR, MostPop,
Random, the like-rate CTR baseline), the best fine-tune by test precision@10, the front
trial with the most tail precision among those at least as accurate as EASE (picked on test,
and picked on validation as a researcher would, with its test figures), under the item-cold
protocol the new-item metrics of every baseline and of the fine-tune best on them by
validation, the cold-user slice (or why it is empty), every trial's ctr_auc against the
like-rate baseline, each of those picks and the anchors paired with EASE on the same test users (the difference with a
95% bootstrap interval: is it more than noise?), and the study's hypervolume against its
reference front's (same reference point).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from moo_search import load_study
from moo_search.report import collect

COLS = (
    "precision@10",
    "ndcg@10",
    "tail/precision@10",
    "cold/precision@10",
    "ild@10",
    "novelty@10",
    "ctr_auc",
)


def _fmt(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _row(name: str, m: dict[str, Any]) -> str:
    return f"{name:<34}" + "".join(f"{_fmt(m.get(c)):>19}" for c in COLS)


def paired_with_ease(study: Any, data: Any, picks: list[tuple[str, Any]]) -> list[str]:
    """Each pick against EASE on the same test users, from the per-user hits the study
    recorded (every trial's and EASE's): the difference in precision@10 and
    tail/precision@10 with the report's 95% paired-bootstrap interval over users, and the
    hit counts behind it."""
    from moo_search.recommender.records import BASELINE_HITS, HITS_RECORD
    from moo_search.study import record_key, unpack_counts

    recorded = study.user_attrs.get(BASELINE_HITS) or {}
    paired = data.panel.facts.get("vs_trials") or {}
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if "EASE" not in recorded:
        return ["paired with EASE: the study recorded no per-user test hits (an older study)"]
    tail_users = unpack_counts(recorded["tail_users"]).astype(bool)
    ease = {name: unpack_counts(recorded["EASE"][name]) for name in ("all", "tail")}
    lines = [
        f"paired with EASE on the same test users ({len(tail_users)}; {int(tail_users.sum())} "
        "with a relevant tail item), 95% bootstrap interval over users:"
    ]
    for name, row in picks:
        n = int(row["number"])
        vs = paired.get(n)
        hits = trials[n].user_attrs.get(record_key(HITS_RECORD)) if n in trials else None
        if not isinstance(vs, dict) or not isinstance(hits, dict):
            lines.append(f"  {name}: no per-user test hits recorded; skipped")
            continue
        cells = []
        for key, label, users in (
            ("all", "precision@10", slice(None)),
            ("tail", "tail/precision@10", tail_users),
        ):
            mean, lo, hi = vs[key]
            mine = int(unpack_counts(hits[key])[users].sum())
            cells.append(
                f"{label} {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] "
                f"({mine} vs {int(ease[key][users].sum())} hits)"
            )
        lines.append(f"  {name}: " + "; ".join(cells))
    return lines


NEW_COLS = (
    "precision@10",
    "cold_item/recall@20",
    "cold_item/ndcg@20",
    "mixed/precision@10",
    "mixed/new_share@10",
)


def new_items_table(baselines: dict[str, Any], done: Any) -> None:
    """Under the item-cold protocol: every baseline and the fine-tune most accurate on new
    items by validation (and, for reference, by test), on warm precision, the new items
    ranked among themselves and the mixed catalog (test)."""
    key = "cold_item/recall@20"
    if f"test:{key}" not in done or done[f"test:{key}"].isna().all():
        return
    row = lambda name, m: f"{name:<34}" + "".join(f"{_fmt(m.get(c)):>21}" for c in NEW_COLS)  # noqa: E731
    print("\nnew items (test)".ljust(35) + "".join(f"{c:>21}" for c in NEW_COLS))
    for name, res in baselines.items():
        if name != "LikeRate":
            print(row(name, res.get("test", {})))
    for how in ("val", "test"):
        pick = done.loc[done[f"{how}:{key}"].astype(float).idxmax()]
        label = f"trial {int(pick['number'])} (best {key}, {how})"
        print(row(label, {c: pick.get(f"test:{c}") for c in NEW_COLS}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", nargs="?", default="reports/quickstart")
    ap.add_argument("--study-name")
    args = ap.parse_args(argv)
    study = load_study(args.target, args.study_name)
    data = collect(study)
    baselines = study.user_attrs.get("moo:baselines") or {}
    rows = data.rows
    done = rows[rows["state"] == "COMPLETE"]
    fine = done[done["derived_from"].isna()] if "derived_from" in done else done
    test = lambda r: {c: r.get(f"test:{c}") for c in COLS}  # noqa: E731

    print(
        f"study {study.study_name!r}: {len(fine)} fine-tunes, {len(done) - len(fine)} "
        f"variants, {int(data.rows['pareto'].sum())} front points"
    )
    print("\ntest split" + "".join(f"{c:>19}" for c in COLS).rjust(34 + 19 * len(COLS) - 10))
    like = (baselines.get("LikeRate") or {}).get("test", {})
    for name, res in baselines.items():
        if name != "LikeRate":
            print(_row(name, {**res.get("test", {}), "ctr_auc": like.get("ctr_auc")}))
    print(_row("LikeRate (CTR only)", like))
    ease = (baselines.get("EASE") or {}).get("test", {})
    picks: list[tuple[str, Any]] = []
    if len(done):
        best = done.loc[done["test:precision@10"].astype(float).idxmax()]
        print(_row(f"best trial {int(best['number'])} (test P@10)", test(best)))
        picks.append((f"best trial {int(best['number'])}", best))
        front = done[done["pareto"].astype(bool)]
        acc = front[front["test:precision@10"].astype(float) >= ease.get("precision@10", 0)]
        if len(acc):
            tail = acc.loc[acc["test:tail/precision@10"].astype(float).idxmax()]
            print(_row(f"front trial {int(tail['number'])} (P>=EASE, max tail)", test(tail)))
            picks.append((f"front trial {int(tail['number'])} (by test)", tail))
        else:
            print("no front trial reaches EASE's test precision@10")
        # the same pick made the honest way, on validation; then its test figures
        ease_val = (baselines.get("EASE") or {}).get("val", {})
        vacc = front[front["val:precision@10"].astype(float) >= ease_val.get("precision@10", 0)]
        if len(vacc) and "val:tail/precision@10" in vacc:
            pick = vacc.loc[vacc["val:tail/precision@10"].astype(float).idxmax()]
            print(
                _row(f"front trial {int(pick['number'])} (by val: P>=EASE, max tail)", test(pick))
            )
            picks.append((f"front trial {int(pick['number'])} (by val)", pick))
            print(
                f"{'  its validation':<34}"
                + "".join(f"{_fmt(pick.get(f'val:{c}')):>19}" for c in COLS[:-1])
                + f"{'':>19}\n{'  EASE validation':<34}"
                + "".join(f"{_fmt(ease_val.get(c)):>19}" for c in COLS[:-1])
            )
    new_items_table(baselines, done)
    if "test:cold/precision@10" not in done or done["test:cold/precision@10"].isna().all():
        print("cold/ slice: empty - no test user has <= eval.cold_user_max train items here")
    anchors = fine[fine["anchor"].astype(str) != ""] if "anchor" in fine else fine.iloc[:0]
    for _, row in anchors.iterrows():
        picks.append((f"{row['anchor']} anchor, trial {int(row['number'])}", row))
    if picks:
        print()
        for line in paired_with_ease(study, data, picks):
            print(line)
    print()
    for line in data.comparison_lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
