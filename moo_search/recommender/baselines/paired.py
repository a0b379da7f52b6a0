"""The baselines' per-user test hits every study records, to pair trials with (the paired
comparison's other half)."""

from __future__ import annotations

from typing import Any

from moo_search.recommender.baselines.ranking import (
    BaselineContext,
    ease_fits,
    sansa_installed,
)
from moo_search.recommender.evaluate import evaluate_lists

__all__ = ["PAIRED_BASELINES", "baseline_test_hits"]

PAIRED_BASELINES = ("EASE",)
"""Baselines whose per-user test hits every study records, to pair trials with."""


def baseline_test_hits(
    spec: Any, data: Any, names: tuple[str, ...] = PAIRED_BASELINES, ctx: Any = None
) -> dict[str, Any]:
    """Per evaluated test user, the baselines' relevant items in their top ``eval.k``
    (packed, as trials record theirs), the users' count and which of them have a relevant
    tail item: ``{"n_users", "tail_users", name: {"all", "tail"}}``."""
    from moo_search.recommender.trial_eval import eval_context, hits_per_user
    from moo_search.study import pack_counts

    ctx = ctx if ctx is not None else BaselineContext.of(spec, data)
    if not ease_fits(data.split.n_items):  # SANSA stands in for EASE, under its own name
        names = tuple("SANSA" if n == "EASE" else n for n in names)
        if not sansa_installed():
            names = tuple(n for n in names if n != "SANSA")
    ectx = eval_context(spec, data, "test")
    out: dict[str, Any] = {}
    for name in names:
        try:
            res = evaluate_lists(
                ctx.scorer(name),
                data.ds,
                data.split,
                eval_cfg=spec.eval,
                parts=("test",),
                features=data.features,
            )
        except Exception as e:
            ctx.fail(name, e)
            continue
        users, lists = res[1]["test"]
        out[name] = hits_per_user(spec, ectx, users, lists)
    out["n_users"] = len(ectx.users)
    out["tail_users"] = pack_counts(ectx.has_tail(ectx.users))
    return out
