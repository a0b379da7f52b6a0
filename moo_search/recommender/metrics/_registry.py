"""The metric registry: every metric family with its direction, how it is computed from
top-K lists and which slices it is reported on; name lookup for the spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.metrics._context import EvalContext
from moo_search.recommender.metrics._example import MetricExample
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
        example: For a list metric, its hand-computed values on the planted example.
    """

    name: str
    direction: str
    at_k: bool = True
    compute: ListCompute | None = None
    slices: tuple[str, ...] = field(default=())
    description: str = ""
    sliced_only: bool = False  # reported only in its slices (e.g. mixed/new_share@K)
    needs: tuple[str, ...] = ()
    example: MetricExample | None = None
    """A list metric's value on the planted example, worked out by hand
    (:mod:`moo_search.recommender.metrics._example`); the contract suite checks it."""

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
    example: MetricExample,
) -> None:
    METRICS.register(
        name,
        MetricDef(
            name,
            direction,
            compute=compute,
            slices=slices,
            description=text,
            sliced_only=sliced_only,
            needs=needs,
            example=example,
        ),
    )


def _new_share(lists: np.ndarray, ctx: EvalContext) -> float:
    return float(np.mean(ctx.new[lists])) if ctx.new is not None else 0.0


def _new_precision(lists: np.ndarray, users: np.ndarray, ctx: EvalContext) -> float:
    if ctx.new is None:
        return 0.0
    return float(
        np.mean((_hits(lists, users, ctx.relevant) & ctx.new[lists]).sum(1) / lists.shape[1])
    )


for _name, _text, _better in (
    ("precision", "|L ∩ R| / K", (2 / 3 + 1 / 3) / 2),
    ("recall", "|L ∩ R| / |R|", 1.0),
    # user 0: hits at ranks 2 and 3 of 2 relevant: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    (
        "ndcg",
        "binary gains, log2 discount",
        ((1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3)) + 1) / 2,
    ),
    ("hit", "at least one relevant item in L", 1.0),
    ("mrr", "1 / rank of the first relevant item", (1 / 2 + 1) / 2),
):
    _list_metric(
        _name,
        "maximize",
        _ranking_entry(_name),
        _text,
        ("cold", "tail", "mixed"),
        example=MetricExample(better=float(_better), worse=0.0),
    )
_list_metric(
    "ild",
    "maximize",
    lambda lists, users, ctx, rel: ild(lists, ctx.features),
    "intra-list diversity over item features",
    ("cold",),
    needs=("item_features",),
    # pairs across genres count 1: better 2/3 and 2/3; worse 2/3 and 0
    example=MetricExample(better=2 / 3, worse=1 / 3),
)
_list_metric(
    "novelty",
    "maximize",
    lambda lists, users, ctx, rel: novelty(lists, ctx.item_users, ctx.n_train_users),
    "mean self-information -log2(pop)",
    ("cold",),
    # -log2 of 4/4, 3/4, 2/4, 1/4, 1/4 and 1/5 (never seen), averaged over the six slots
    example=MetricExample(
        better=(0 - np.log2(3 / 4) + np.log2(5) + 2 + 1 + 2) / 6,
        worse=(0 + 1 + 2 + 0 - np.log2(3 / 4) + 1) / 6,
    ),
)
_list_metric(
    "coverage",
    "maximize",
    lambda lists, users, ctx, rel: coverage(lists, ctx.n_catalog),
    "share of the catalog recommended",
    example=MetricExample(better=6 / 6, worse=4 / 6),
)
_list_metric(
    "tail_share",
    "maximize",
    lambda lists, users, ctx, rel: tail_share(lists, ctx.head),
    "share of slots outside the popular head",
    example=MetricExample(better=4 / 6, worse=3 / 6),
)
_list_metric(
    "gini",
    "minimize",
    lambda lists, users, ctx, rel: gini(
        lists if ctx.catalog is None else np.cumsum(ctx.catalog)[lists] - 1, ctx.n_catalog
    ),
    "Gini coefficient of exposure",
    # better: every item once (0); worse: exposure sorted [0,0,1,1,2,2], sum (2i-n-1)x / (n sum x)
    example=MetricExample(better=0.0, worse=16 / 36),
)
_list_metric(
    "new_share",
    "maximize",
    lambda lists, users, ctx, rel: _new_share(lists, ctx),
    "share of slots given to new (held-out) items",
    ("mixed",),
    sliced_only=True,
    needs=("held_out_items",),
    example=MetricExample(better=2 / 6, worse=1 / 6),
)
_list_metric(
    "new_precision",
    "maximize",
    lambda lists, users, ctx, rel: _new_precision(lists, users, ctx),
    "relevant new items in L / K",
    ("mixed",),
    sliced_only=True,
    needs=("held_out_items",),
    example=MetricExample(better=(1 / 3 + 0) / 2, worse=0.0),
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


COLD_ITEM_TASKS = (
    "click_auc",
    "click_logloss",
    "conversion_auc",
    "conversion_logloss",
    "satisfaction_rmse",
)
"""The task metrics the ``cold_item/`` slice reports (the tasks on a part's held-out items)
and the ``mixed/`` slice (on the part's warm and held-out items' pairs together, each pair
predicted by its own head)."""


def is_task_metric(name: str) -> bool:
    """Whether ``name`` is a click, conversion or satisfaction metric (or an old ctr_ one),
    on warm items, (``cold_item/``) on new ones or (``mixed/``) on both together."""
    for pre in ("cold_item/", "mixed/"):
        if name.startswith(pre):
            return name.removeprefix(pre) in COLD_ITEM_TASKS
    return any(name == n for n, _, _ in TASK_METRICS)


for _name, _text in (
    ("seconds", "wall seconds of the whole trial"),
    ("train_seconds", "wall seconds of its training loop"),
    ("train_tokens", "tokens through the text tower in training"),
    ("encoded_tokens", "tokens the text tower encoded in all (training, scoring, evaluation)"),
    ("trainable_params", "parameters the trial trains (adapter, heads, a learned backbone)"),
    ("peak_mem_mb", "peak memory in MiB (GPU allocated, else the process's resident set)"),
):
    METRICS.register(
        f"cost/{_name}", MetricDef(f"cost/{_name}", "minimize", at_k=False, description=_text)
    )

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
    if m["slice"] in ("cold_item", "mixed") and m["family"] in COLD_ITEM_TASKS:
        return mdef if m["k"] is None else None
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
