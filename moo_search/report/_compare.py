"""The front's trials against a baseline on the same test users: per-user differences with a
bootstrap interval, and what an interval says."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["pair_with_baseline", "verdict"]


def verdict(lo: float, hi: float) -> str:
    """What a difference's interval says: above 0, below 0, or either (noise)."""
    return "better" if lo > 0 else "worse" if hi < 0 else "within noise"


def pair_with_baseline(
    rows: pd.DataFrame, recorded: dict[str, Any] | None, baseline: str | None
) -> dict[str, Any] | None:
    """Pair every fine-tune and front trial with ``baseline`` on the same test users: the
    difference in test precision@k (``"all"``) and tail/precision@k (``"tail"``) with its 95%
    bootstrap interval over users, as ``rows["vs"]`` (``{"baseline", "all": [mean, lo, hi],
    "tail": [...]}``). Returns that of the front's most accurate trial on validation (the
    front's other end trades accuracy away by design: the reference front judges it)."""
    from moo_search.stats import paired_bootstrap
    from moo_search.study import unpack_counts

    rows["vs"] = None
    if not recorded or baseline is None or baseline not in recorded or "hits" not in rows:
        return None
    theirs = recorded[baseline]
    tail_users = unpack_counts(recorded["tail_users"]).astype(bool)
    k = theirs["k"]
    wanted = rows["pareto"].astype(bool) | rows["derived_from"].isna()
    for i in rows.index[wanted & (rows["state"] == "COMPLETE")]:
        mine = rows.at[i, "hits"]
        if not isinstance(mine, dict) or mine.get("k") != k:
            continue
        vs: dict[str, Any] = {"baseline": baseline}
        for name, users in (("all", slice(None)), ("tail", tail_users)):
            a, b = unpack_counts(mine[name]), unpack_counts(theirs[name])
            if len(a) != len(b):
                break  # (not the same test users: another split)
            vs[name] = list(paired_bootstrap(a[users] / k, b[users] / k, 1000))
        else:
            rows.at[i, "vs"] = vs
    col = f"val:precision@{k}"
    paired = rows[rows["pareto"].astype(bool) & rows["vs"].notna()]
    if col not in paired or paired[col].isna().all():
        return None
    top = paired.loc[paired[col].astype(float).idxmax()]
    return {"k": k, "trial": int(top["number"]), **top["vs"]}
