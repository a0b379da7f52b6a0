"""Ranking and beyond-accuracy metrics, vectorized over users and the full catalog.

Definitions (DESIGN.md, "Metrics"): for each evaluated user u -- one with at least one
relevant item in the evaluated split -- with top-K list L_u and relevant items R_u.
Items seen before the evaluated split are excluded before the top-K is taken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from moo_search.registry import METRICS

__all__ = [
    "EvalContext",
    "MetricDef",
    "auc",
    "coverage",
    "evaluate_topk",
    "gini",
    "ild",
    "is_known_metric",
    "logloss",
    "metric_direction",
    "novelty",
    "paired_bootstrap",
    "ranking_metrics",
    "tail_share",
    "topk",
    "user_hits",
]


def topk(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first; ``exclude``d items never appear."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.nnz:
        rows, cols = exclude.nonzero()
        s[rows, cols] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _hits(lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(users, lists.shape[1])
    return np.asarray(relevant[rows, lists.ravel()]).reshape(lists.shape) > 0


def ranking_metrics(
    lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, float]:
    """precision/recall/ndcg/hit/mrr@k, means over ``users`` (rows of ``lists``).

    NDCG uses binary gains and a log2 discount; the ideal DCG places min(|R_u|, k) hits first.
    """
    lists = lists[:, :k]
    hits = _hits(lists, users, relevant)
    n_rel = np.asarray(relevant[users].sum(1)).ravel().astype(np.int64)
    n_hit = hits.sum(1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount[: lists.shape[1]]).sum(1)
    ideal = np.cumsum(discount)[np.minimum(n_rel, k) - 1]
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return {
        f"precision@{k}": float(np.mean(n_hit / k)),
        f"recall@{k}": float(np.mean(n_hit / n_rel)),
        f"ndcg@{k}": float(np.mean(dcg / ideal)),
        f"hit@{k}": float(np.mean(n_hit > 0)),
        f"mrr@{k}": float(np.mean(1.0 / first)),
    }


def ild(lists: np.ndarray, features: np.ndarray) -> float:
    """Intra-list diversity: mean over pairs i<j of 1 - cos(g_i, g_j), then over users.

    Items with an all-zero feature vector have cosine 0 to everything.
    """
    k = lists.shape[1]
    if k < 2:
        return 0.0
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    g = np.divide(features, norm, out=np.zeros_like(features, dtype=np.float64), where=norm > 0)
    gl = g[lists]  # (U, K, d)
    sims = np.einsum("ukd,ujd->ukj", gl, gl)
    iu = np.triu_indices(k, 1)
    return float(np.mean(1.0 - sims[:, iu[0], iu[1]]))


def novelty(lists: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(pop_i) over the lists (Zhou et al., PNAS 2010).

    pop_i = share of train users who interacted with i; unseen items use 1/(n_users+1).
    """
    pop = np.where(item_users > 0, item_users / max(n_users, 1), 1.0 / (n_users + 1))
    return float(np.mean(-np.log2(pop[lists])))


def coverage(lists: np.ndarray, n_items: int) -> float:
    """Share of the catalog recommended to at least one user."""
    return float(len(np.unique(lists)) / n_items)


def head_items(item_counts: np.ndarray, share: float = 0.8) -> np.ndarray:
    """Boolean mask of the most popular items that make up ``share`` of train interactions."""
    order = np.argsort(-item_counts, kind="stable")
    cum = np.cumsum(item_counts[order]) / max(item_counts.sum(), 1)
    n_head = int(np.searchsorted(cum, share) + 1) if item_counts.sum() > 0 else 0
    mask = np.zeros(len(item_counts), dtype=bool)
    mask[order[:n_head]] = True
    return mask


def tail_share(lists: np.ndarray, head: np.ndarray) -> float:
    """Share of recommended slots filled by items outside the popular head."""
    return float(np.mean(~head[lists]))


def gini(lists: np.ndarray, n_items: int) -> float:
    """Gini coefficient of item exposure over the whole catalog (0 = equal exposure)."""
    x = np.sort(np.bincount(lists.ravel(), minlength=n_items).astype(np.float64))
    n = len(x)
    if x.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * x.sum()))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney U statistic, ties averaged; NaN with one class only."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass
class EvalContext:
    """What the metrics need besides the lists: relevance, features, popularity, slices."""

    relevant: sp.csr_matrix  # (U, I) relevant items of the evaluated split
    exclude: sp.csr_matrix  # (U, I) items seen before the evaluated split
    features: np.ndarray  # (I, d) model-independent item features
    item_users: np.ndarray  # (I,) train users per item
    n_train_users: int
    head: np.ndarray  # (I,) bool
    cold_users: np.ndarray  # (U,) bool

    @property
    def users(self) -> np.ndarray:
        """Evaluated users: at least one relevant item in the split."""
        return np.flatnonzero(np.asarray(self.relevant.sum(1)).ravel() > 0)

    @cached_property
    def tail_relevant(self) -> sp.csr_matrix:
        """The relevant items outside the popular head: the ``tail/`` slice's relevance."""
        return self.relevant.multiply(sp.csr_matrix(~self.head, dtype=np.float32)).tocsr()

    def has_tail(self, users: np.ndarray) -> np.ndarray:
        """Mask of ``users`` with a relevant tail item: the users of the ``tail/`` slice."""
        return np.asarray(self.tail_relevant[users].sum(1)).ravel() > 0

    @classmethod
    def from_split(
        cls,
        split: object,
        name: str,
        features: np.ndarray,
        *,
        cold_user_max: int = 10,
        head_share: float = 0.8,
    ) -> EvalContext:
        from moo_search.data.split import Split

        assert isinstance(split, Split)
        user_counts, item_users = split.train_counts()
        return cls(
            relevant=split.matrix(name, relevant_only=True),
            exclude=split.seen_before(name),
            features=features,
            item_users=item_users,
            n_train_users=int((user_counts > 0).sum()),
            head=head_items(item_users, head_share),
            cold_users=user_counts <= cold_user_max,
        )


# --------------------------------------------------------------------------- the registry

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
    """

    name: str
    direction: str
    at_k: bool = True
    compute: ListCompute | None = None
    slices: tuple[str, ...] = field(default=())
    description: str = ""


def _ranking_entry(key: str) -> ListCompute:
    def compute(
        lists: np.ndarray, users: np.ndarray, ctx: EvalContext, rel: sp.csr_matrix
    ) -> float:
        k = lists.shape[1]
        return ranking_metrics(lists, users, rel, k)[f"{key}@{k}"]

    return compute


def _list_metric(
    name: str, direction: str, compute: ListCompute, text: str, slices: tuple[str, ...] = ()
) -> None:
    METRICS.register(name, MetricDef(name, direction, True, compute, slices, text))


for _name, _text in (
    ("precision", "|L ∩ R| / K"),
    ("recall", "|L ∩ R| / |R|"),
    ("ndcg", "binary gains, log2 discount"),
    ("hit", "at least one relevant item in L"),
    ("mrr", "1 / rank of the first relevant item"),
):
    _list_metric(_name, "maximize", _ranking_entry(_name), _text, ("cold", "tail"))
_list_metric(
    "ild",
    "maximize",
    lambda lists, users, ctx, rel: ild(lists, ctx.features),
    "intra-list diversity over item features",
    ("cold",),
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
    lambda lists, users, ctx, rel: coverage(lists, rel.shape[1]),
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
    lambda lists, users, ctx, rel: gini(lists, rel.shape[1]),
    "Gini coefficient of exposure",
)
for _name, _dir, _text in (
    ("ctr_auc", "maximize", "CTR head ROC AUC on held-out exposures"),
    ("ctr_logloss", "minimize", "CTR head log loss on held-out exposures"),
):
    METRICS.register(_name, MetricDef(_name, _dir, at_k=False, description=_text))
for _name in (
    "seconds",
    "train_seconds",
    "train_tokens",
    "encoded_tokens",
    "trainable_params",
    "peak_mem_mb",
):
    METRICS.register(f"cost/{_name}", MetricDef(f"cost/{_name}", "minimize", at_k=False))

_NAME_RE = re.compile(r"^(?:(?P<slice>cold|tail)/)?(?P<family>[a-z_/]+?)(?:@(?P<k>\d+))?$")


def _lookup(name: str) -> MetricDef | None:
    m = _NAME_RE.match(name)
    if not m or m["family"] not in METRICS:
        return None
    mdef: MetricDef = METRICS.get(m["family"])
    if mdef.at_k != (m["k"] is not None) or (m["slice"] and m["slice"] not in mdef.slices):
        return None
    return mdef


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
        if mdef.compute is not None and (not where or where in mdef.slices):
            out[f"{where + '/' if where else ''}{name}@{k}"] = mdef.compute(lists, users, ctx, rel)
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


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of the per-user differences ``a - b`` (two models on the same users) and its
    ``level`` percentile-bootstrap interval, resampling users (Efron & Tibshirani, 1993): is
    a difference in a mean-over-users metric more than the noise of which users were drawn?"""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(
            f"paired_bootstrap needs two equal-length 1-D arrays, got {x.shape} and {y.shape}"
        )
    d = x - y
    idx = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(d[idx].mean(1), [tail, 100 - tail])
    return float(d.mean()), float(lo), float(hi)


def user_hits(lists: np.ndarray, users: np.ndarray, ctx: EvalContext) -> dict[str, np.ndarray]:
    """Per evaluated user (``users`` = ``ctx.users``, the rows of ``lists``): relevant items in
    the top-k list, all (``"all"``; precision@k = mean / k) and tail ones (``"tail"``; over
    the users with a relevant tail item, tail/precision@k = mean / k). Two models' vectors on
    the same split pair up user by user (:func:`paired_bootstrap`)."""
    n, k = lists.shape
    shown = sp.csr_matrix(
        (np.ones(n * k), lists.ravel(), np.arange(0, n * k + 1, k)), (n, ctx.relevant.shape[1])
    )
    return {
        name: np.asarray(shown.multiply(rel[users]).sum(1)).ravel().round().astype(np.int64)
        for name, rel in (("all", ctx.relevant), ("tail", ctx.tail_relevant))
    }
