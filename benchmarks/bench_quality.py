"""Does the study's front beat the classic recommenders? A table from a finished study.

    python benchmarks/bench_quality.py [reports/quickstart] [--study-name NAME]

Reads the study (storage, recorded baselines and the fine-tunes' top-10 lists; nothing is
trained, EASE is refit from its cached backbone for the paired comparison) and prints, on the
test split: every baseline (EASE with lambda tuned on validation, ItemKNN, BPR, MostPop,
Random, the like-rate CTR baseline), the best fine-tune by test precision@10, the front
trial with the most tail precision among those at least as accurate as EASE (picked on test,
and picked on validation as a researcher would, with its test figures), the cold-user
slice (or why it is empty), every trial's ctr_auc against the like-rate baseline, each of
those picks and the anchors paired with EASE on the same test users (the difference with a
95% bootstrap interval: is it more than noise?), and the study's hypervolume against its
reference front's (same reference point).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

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


def _hits(top: np.ndarray, users: np.ndarray, rel: Any) -> np.ndarray:
    """Relevant items in each user's top-k list (rows of ``rel``: the users' relevant items)."""
    import scipy.sparse as sp

    n, k = top.shape
    shown = sp.csr_matrix(
        (np.ones(n * k), top.ravel(), np.arange(0, n * k + 1, k)), (n, rel.shape[1])
    )
    return np.asarray(shown.multiply(rel[users]).sum(1)).ravel()


def paired_with_ease(study: Any, picks: list[tuple[str, Any]], n_boot: int = 2000) -> list[str]:
    """Each picked fine-tune against EASE on the same test users: the difference in
    precision@10 and tail/precision@10 with a 95% paired-bootstrap interval over users, and in
    hits. EASE is refit from its cached backbone (a second); the fine-tunes' own top-10 lists
    are read from their artifacts (a variant has none of its own: it is skipped)."""
    import scipy.sparse as sp

    from moo_search.evaluate import evaluate_scorer
    from moo_search.metrics import EvalContext, paired_bootstrap
    from moo_search.model.baselines import BaselineContext, ease
    from moo_search.spec import spec_from_dict
    from moo_search.trial import prepare_data

    spec = spec_from_dict(study.user_attrs["moo:spec"])
    prep = prepare_data(spec)
    ecfg = spec.eval
    out = evaluate_scorer(
        ease(BaselineContext(ds=prep.ds, split=prep.split, eval_cfg=ecfg)),
        prep.ds,
        prep.split,
        eval_cfg=ecfg,
        parts=("test",),
        features=prep.features,
        return_lists=True,
    )
    assert isinstance(out, tuple)
    users, ease_top = out[1]["test"]
    ctx = EvalContext.from_split(
        prep.split,
        "test",
        prep.features,
        cold_user_max=ecfg.cold_user_max,
        head_share=ecfg.head_share,
    )
    rel = ctx.relevant.tocsr()
    tail_rel = rel.multiply(sp.csr_matrix(~ctx.head, dtype=np.float32)).tocsr()
    has_tail = np.asarray(tail_rel[users].sum(1)).ravel() > 0
    k = ease_top.shape[1]
    base = (_hits(ease_top, users, rel), _hits(ease_top, users, tail_rel))
    lines = [
        f"paired with EASE on the same test users ({len(users)}; {int(has_tail.sum())} with a "
        f"relevant tail item), 95% bootstrap interval over users ({n_boot} resamples):"
    ]
    for name, row in picks:
        art = row.get("artifact_dir")
        derived = row.get("derived_from")
        if derived is not None and not (isinstance(derived, float) and math.isnan(derived)):
            lines.append(
                f"  {name}: a variant of trial {int(derived)}, no lists of its own; skipped"
            )
            continue
        if not isinstance(art, str) or not (Path(art) / "lists.npz").is_file():
            lines.append(f"  {name}: its top-10 lists are not in its artifacts; skipped")
            continue
        z = np.load(Path(art) / "lists.npz")
        if not np.array_equal(z["test_users"], users) or z["test_lists"].shape[1] < k:
            lines.append(f"  {name}: its lists are not over the same test users; skipped")
            continue
        top = z["test_lists"][:, :k]
        cells = []
        for label, mask, mine, theirs in (
            ("precision@10", slice(None), _hits(top, users, rel), base[0]),
            ("tail/precision@10", has_tail, _hits(top, users, tail_rel), base[1]),
        ):
            mean, lo, hi = paired_bootstrap(mine[mask] / k, theirs[mask] / k, n_boot)
            cells.append(
                f"{label} {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] "
                f"({int(mine[mask].sum())} vs {int(theirs[mask].sum())} hits)"
            )
        lines.append(f"  {name}: " + "; ".join(cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", nargs="?", default="reports/quickstart")
    ap.add_argument("--study-name")
    ap.add_argument(
        "--no-paired", dest="paired", action="store_false", help="skip the paired comparison"
    )
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
        f"variants (re-ranked or served at other fusion weights), {int(data.rows['pareto'].sum())} front points"
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
    if "test:cold/precision@10" not in done or done["test:cold/precision@10"].isna().all():
        print("cold/ slice: empty - no test user has <= eval.cold_user_max train items here")
    if len(fine) and "test:ctr_auc" in fine:
        aucs = fine["test:ctr_auc"].astype(float)
        print(
            f"\nctr_auc (test) of the {len(fine)} fine-tunes: min {aucs.min():.4f}, "
            f"max {aucs.max():.4f}; like-rate baseline {_fmt(like.get('ctr_auc'))}; "
            f"above it: {int((aucs > like.get('ctr_auc', 1.0)).sum())}/{len(aucs)}; "
            f"below 0.5: {int((aucs < 0.5).sum())}"
        )
    anchors = fine[fine["anchor"].astype(str) != ""] if "anchor" in fine else fine.iloc[:0]
    for _, row in anchors.iterrows():
        picks.append((f"{row['anchor']} anchor, trial {int(row['number'])}", row))
    if picks and "EASE" in baselines and args.paired:
        print()
        for line in paired_with_ease(study, picks):
            print(line)
    print()
    for line in data.comparison_lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
