"""Ranking and beyond-accuracy metrics, vectorized over users and the full catalog.

Definitions (DESIGN.md, "Metrics"): for each evaluated user u -- one with at least one
relevant item in the evaluated split -- with top-K list L_u and relevant items R_u.
Items seen before the evaluated split are excluded before the top-K is taken.
"""

from __future__ import annotations

from moo_search.recommender.metrics._context import EvalContext, cold_item_metrics, user_hits
from moo_search.recommender.metrics._example import EXAMPLE_LISTS, MetricExample, example_context
from moo_search.recommender.metrics._functions import (
    auc,
    coverage,
    gini,
    head_items,
    ild,
    logloss,
    novelty,
    ranked_top,
    ranking_metrics,
    ranking_per_user,
    tail_share,
    topk,
)
from moo_search.recommender.metrics._registry import (
    COLD_ITEM_FAMILIES,
    COLD_ITEM_TASKS,
    NEEDS,
    SLICES,
    MetricDef,
    evaluate_mixed,
    evaluate_topk,
    is_known_metric,
    is_task_metric,
    metric_direction,
    metric_needs,
)
from moo_search.stats import paired_bootstrap

__all__ = [
    "COLD_ITEM_FAMILIES",
    "COLD_ITEM_TASKS",
    "EXAMPLE_LISTS",
    "NEEDS",
    "SLICES",
    "EvalContext",
    "MetricDef",
    "MetricExample",
    "auc",
    "cold_item_metrics",
    "coverage",
    "evaluate_mixed",
    "evaluate_topk",
    "example_context",
    "gini",
    "head_items",
    "ild",
    "is_known_metric",
    "is_task_metric",
    "logloss",
    "metric_direction",
    "metric_needs",
    "novelty",
    "paired_bootstrap",
    "ranked_top",
    "ranking_metrics",
    "ranking_per_user",
    "tail_share",
    "topk",
    "user_hits",
]
