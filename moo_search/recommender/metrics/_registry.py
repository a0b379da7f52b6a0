"""The metric registry: every metric family with its direction, how it is computed from
top-K lists and which slices it is reported on; name lookup for the spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.metrics._context import EvalContext
from moo_search.recommender.metrics._functions import (
    _hits,
    coverage,
    gini,
    ild,
    novelty,
    ranking_metrics,
    tail_share,
)
from moo_search.recommender.registries import METRICS

_FAMILY_RE = re.compile(r"^[a-z][a-z0-9_/]*$")

NEEDS = {
    "ratings": "graded ratings (at least two distinct values; click-only data has one)",
    "item_features": "item features (genres) to compare items by",
    "held_out_items": "held-out new items (data.split.cold_items)",
}
"""What a metric can need from the data (``MetricDef.needs``)."""

ListCompute = Callable[[np.ndarray, np.ndarray, "EvalContext", sp.csr_matrix], float]
"""(top-k lists, their users, context, relevance matrix of the slice) -> mean over users."""


@dataclass(frozen=True)
class MetricDef:
    """A registered metric family.

    Attributes:
        direction: Which way is better (export's ``best:METRIC``, the report's "best").
        at_k: Named ``<name>@K`` and computed from top-K lists by ``compute``.
        compute: For list metrics; None for metrics the trial reports itself (CTR, cost).
        slices: Slices it is also reported on: ``cold`` (users with few train items) and
            ``tail`` (relevance restricted to items outside the popular head).
        needs: What the data must hold for the metric to mean something (:data:`NEEDS`):
            a study refuses it as an objective or constraint on data without it, and warns
            once where it is only recorded.
    """

    name: str
    direction: str
    at_k: bool = True
    compute: ListCompute | None = None
    slices: tuple[str, ...] = field(default=())
    description: str = ""
    sliced_only: bool = False  # reported only in its slices (e.g. mixed/new_share@K)
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(
                f"metric {self.name!r}: needs {unknown}; expected some of {list(NEEDS)}"
            )
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(
                f"metric {self.name!r}: direction must be 'maximize' or 'minimize', got "
                f"{self.direction!r}"
            )
        if not _FAMILY_RE.match(self.name):
            raise ValueError(
                f"metric {self.name!r}: a name is lower-case letters, digits, '_' and '/' "
                "(starting with a letter; '@K' is added for list metrics), e.g. 'f1' or 'map'"
            )


def _ranking_entry(key: str) -> ListCompute:
    def compute(
        lists: np.ndarray, users: np.ndarray, ctx: EvalContext, rel: sp.csr_matrix
    ) -> float:
        k = lists.shape[1]
        return ranking_metrics(lists, users, rel, k)[f"{key}@{k}"]

    return compute


def _list_metric(
    name: str,
    direction: str,
    compute: ListCompute,
    text: str,
    slices: tuple[str, ...] = (),
    *,
    sliced_only: bool = False,
    needs: tuple[str, ...] = (),
) -> None:
    METRICS.register(
        name, MetricDef(name, direction, True, compute, slices, text, sliced_only, needs)
    )


def _new_share(lists: np.ndarray, ctx: EvalContext) -> float:
    return float(np.mean(ctx.new[lists])) if ctx.new is not None else 0.0


def _new_precision(lists: np.ndarray, users: np.ndarray, ctx: EvalContext) -> float:
    if ctx.new is None:
        return 0.0
    return float(
        np.mean((_hits(lists, users, ctx.relevant) & ctx.new[lists]).sum(1) / lists.shape[1])
    )


for _name, _text in (
    ("precision", "|L ∩ R| / K"),
    ("recall", "|L ∩ R| / |R|"),
    ("ndcg", "binary gains, log2 discount"),
    ("hit", "at least one relevant item in L"),
    ("mrr", "1 / rank of the first relevant item"),
):
    _list_metric(_name, "maximize", _ranking_entry(_name), _text, ("cold", "tail", "mixed"))
_list_metric(
    "ild",
    "maximize",
    lambda lists, users, ctx, rel: ild(lists, ctx.features),
    "intra-list diversity over item features",
    ("cold",),
    needs=("item_features",),
)
_list_metric(
    "novelty",
    "maximize",
    lambda lists, users, ctx, rel: novelty(lists, ctx.item_users, ctx.n_train_users),
    "mean self-information -log2(pop)",
    ("cold",),
)
_list_metric(
    "coverage",
    "maximize",
    lambda lists, users, ctx, rel: coverage(lists, ctx.n_catalog),
    "share of the catalog recommended",
)
_list_metric(
    "tail_share",
    "maximize",
    lambda lists, users, ctx, rel: tail_share(lists, ctx.head),
    "share of slots outside the popular head",
)
_list_metric(
    "gini",
    "minimize",
    lambda lists, users, ctx, rel: gini(
        lists if ctx.catalog is None else np.cumsum(ctx.catalog)[lists] - 1, ctx.n_catalog
    ),
    "Gini coefficient of exposure",
)
_list_metric(
    "new_share",
    "maximize",
    lambda lists, users, ctx, rel: _new_share(lists, ctx),
    "share of slots given to new (held-out) items",
    ("mixed",),
    sliced_only=True,
    needs=("held_out_items",),
)
_list_metric(
    "new_precision",
    "maximize",
    lambda lists, users, ctx, rel: _new_precision(lists, users, ctx),
    "relevant new items in L / K",
    ("mixed",),
    sliced_only=True,
    needs=("held_out_items",),
)
TASK_METRICS = (
    ("click_auc", "maximize", "click head ROC AUC: interactions against sampled other items"),
    ("click_logloss", "minimize", "click head log loss on the same pairs"),
    ("conversion_auc", "maximize", "conversion head ROC AUC: liked among the interactions"),
    ("conversion_logloss", "minimize", "conversion head log loss on the interactions"),
    ("satisfaction_rmse", "minimize", "satisfaction head RMSE of the rating"),
    ("ctr_auc", "maximize", "the old name of conversion_auc (recorded alongside)"),
    ("ctr_logloss", "minimize", "the old name of conversion_logloss (recorded alongside)"),
)
"""The business tasks' metrics (defined in :mod:`moo_search.recommender.model.tasks`)."""
for _name, _dir, _text in TASK_METRICS:
    _needs = () if _name.startswith("click") else ("ratings",)  # liked / the rating itself
    METRICS.register(_name, MetricDef(_name, _dir, at_k=False, description=_text, needs=_needs))


def is_task_metric(name: str) -> bool:
    """Whether ``name`` is a click, conversion or satisfaction metric (or an old ctr_ one)."""
    return any(name == n for n, _, _ in TASK_METRICS)


for _name in (
    "seconds",
    "train_seconds",
    "train_tokens",
    "encoded_tokens",
    "trainable_params",
    "peak_mem_mb",
):
    METRICS.register(f"cost/{_name}", MetricDef(f"cost/{_name}", "minimize", at_k=False))

SLICES = ("cold", "tail", "cold_item", "mixed")
"""Metric name prefixes: ``cold/`` users with few train items, ``tail/`` relevance outside the
popular head, ``cold_item/`` a part's held-out items ranked among themselves, ``mixed/`` the
warm catalog plus the part's held-out items (item-cold protocol)."""
COLD_ITEM_FAMILIES = ("precision", "recall", "ndcg", "hit", "mrr")
"""The metrics of the ``cold_item/`` slice (computed from lists of held-out items)."""

_NAME_RE = re.compile(
    r"^(?:(?P<slice>cold_item|cold|tail|mixed)/)?(?P<family>[a-z][a-z0-9_/]*?)(?:@(?P<k>\d+))?$"
)


def _lookup(name: str) -> MetricDef | None:
    m = _NAME_RE.match(name)
    if not m or m["family"] not in METRICS:
        return None
    mdef: MetricDef = METRICS.get(m["family"])
    if m["slice"] == "cold_item":
        return mdef if m["family"] in COLD_ITEM_FAMILIES and m["k"] is not None else None
    if mdef.at_k != (m["k"] is not None) or (m["slice"] and m["slice"] not in mdef.slices):
        return None
    if mdef.sliced_only and not m["slice"]:
        return None
    return mdef


def metric_needs(name: str) -> tuple[str, ...]:
    """What a known metric needs from the data (:data:`NEEDS`), its slice's needs included:
    ``cold_item/`` and ``mixed/`` need held-out items."""
    mdef = _lookup(name)
    if mdef is None:
        return ()
    held_out = ("held_out_items",) if name.startswith(("cold_item/", "mixed/")) else ()
    return tuple(dict.fromkeys([*mdef.needs, *held_out]))


def is_known_metric(name: str) -> bool:
    """Whether the default trial reports ``name`` (``precision@10``, ``cold/ndcg@5``,
    ``ctr_auc``, ``cost/seconds``)."""
    return _lookup(name) is not None


def metric_direction(name: str) -> str:
    """ "maximize" or "minimize" for a known metric; "maximize" for an unknown one (a custom
    objective's metric has its direction in the spec)."""
    mdef = _lookup(name)
    return mdef.direction if mdef is not None else "maximize"


def _list_metrics(
    lists: np.ndarray, users: np.ndarray, ctx: EvalContext, rel: sp.csr_matrix, k: int, where: str
) -> dict[str, float]:
    out = {}
    for name, mdef in METRICS.items():
        if mdef.compute is None or (mdef.sliced_only and not where):
            continue
        if not where or where in mdef.slices:
            key = f"{where + '/' if where else ''}{name}@{k}"
            try:
                out[key] = float(mdef.compute(lists, users, ctx, rel))
            except Exception as e:  # a plugin's metric: name it, not a traceback
                from moo_search.errors import TrialFailed

                raise TrialFailed(f"metric {key!r} raised {type(e).__name__}: {e}") from e
    return out


def evaluate_topk(
    lists: np.ndarray, users: np.ndarray, ctx: EvalContext, k: int
) -> dict[str, float]:
    """Every registered list metric at ``k`` plus its ``cold/`` and ``tail/`` slices.

    ``lists[r]`` is the ranked list of ``users[r]``; ``users`` should be ``ctx.users``.
    """
    lists = lists[:, :k]
    out = _list_metrics(lists, users, ctx, ctx.relevant, k, "")
    cold = ctx.cold_users[users]
    if cold.any():
        out.update(_list_metrics(lists[cold], users[cold], ctx, ctx.relevant, k, "cold"))
    has_tail = ctx.has_tail(users)
    if has_tail.any():
        out.update(
            _list_metrics(lists[has_tail], users[has_tail], ctx, ctx.tail_relevant, k, "tail")
        )
    return out


def evaluate_mixed(
    lists: np.ndarray, users: np.ndarray, ctx: EvalContext, k: int
) -> dict[str, float]:
    """The ``mixed/`` view's list metrics at ``k`` (``ctx`` built with ``view="mixed"``)."""
    return _list_metrics(lists[:, :k], users, ctx, ctx.relevant, k, "mixed")
