"""What a trial measures besides its main metrics: each test user's hits (what pairs it with a
baseline user by user), its inference-only variants, and the fixed user sample of its
early-stopping rungs."""

from __future__ import annotations

from typing import Any

import numpy as np

from moo_search.recommender.candidates import ScoreBook, book_depth
from moo_search.recommender.evaluate import Lists, Metrics, evaluate_lists, evaluate_scorer
from moo_search.recommender.inference import CatalogScorer
from moo_search.recommender.memory import keep_scores
from moo_search.recommender.metrics import is_task_metric
from moo_search.recommender.prepare import PreparedData, item_alpha
from moo_search.recommender.spec import RecommenderSpec

__all__ = [
    "eval_context",
    "evaluate_variant",
    "hits_per_user",
    "rung_users",
    "trial_book",
    "val_metrics",
]


def hits_per_user(
    spec: RecommenderSpec, ctx: Any, users: np.ndarray, lists: np.ndarray
) -> dict[str, Any]:
    """Relevant items in each evaluated test user's top ``k = eval.k`` (all and tail ones;
    ``ctx``: the test split's :func:`eval_context`), packed: what pairs a trial with a
    baseline user by user (``records.BASELINE_HITS``). ``{"k": k, "all": ..., "tail": ...}``."""
    from moo_search.recommender.metrics import user_hits
    from moo_search.study import pack_counts

    hits = user_hits(lists[:, : spec.eval.k], users, ctx)
    return {"k": spec.eval.k, **{name: pack_counts(h) for name, h in hits.items()}}


def eval_context(spec: RecommenderSpec, data: PreparedData, part: str) -> Any:
    """A split part's :class:`~moo_search.recommender.metrics.EvalContext` under the spec's ``eval``."""
    from moo_search.recommender.metrics import EvalContext

    return EvalContext.from_split(
        data.split,
        part,
        data.features,
        cold_user_max=spec.eval.cold_user_max,
        head_share=spec.eval.head_share,
    )


def trial_book(
    spec: RecommenderSpec, data: PreparedData, scores: Any, variants: list[dict[str, Any]]
) -> ScoreBook:
    """The :class:`ScoreBook` of a trial's kept scores, deep enough for its own lists and the
    re-ranking of every variant that keeps its fusion."""
    cfgs = [spec.rerank]
    cfgs += [spec.with_params(v).rerank for v in variants if not _fuses_otherwise(v)]
    depth = book_depth([*spec.requested_ks(), spec.eval.k], cfgs)
    return ScoreBook(scores, data.split, data.features, spec.eval, depth=depth)


def _fuses_otherwise(knobs: dict[str, Any]) -> bool:
    """Whether a variant fuses otherwise, so that it scores again (its own book)."""
    return any(k.startswith("fusion.") for k in knobs)


def evaluate_variant(
    spec: RecommenderSpec,
    data: PreparedData,
    scorer: CatalogScorer,
    book: ScoreBook,
    metrics: dict[str, dict[str, float]],
    knobs: dict[str, float],
    ks: tuple[int, ...],
) -> tuple[Metrics, Lists]:
    """The trained model's metrics at other inference-only knobs: re-ranking ones from the
    kept scores' ``book``, serving fusion weights (``fusion.serve_*``) on the kept embeddings.
    The CTR head's inputs do not depend on either, so its metrics are the fine-tune's. Also
    returns the top-k lists per part, as :func:`~moo_search.recommender.evaluate.evaluate_lists`
    does."""
    vspec = spec.with_params(knobs)
    scores: Any = book.score
    own: ScoreBook | None = book
    if _fuses_otherwise(knobs):
        served = scorer.serving(item_alpha(vspec, data, serving=True))
        scores = keep_scores(served, data.ds.n_users, data.ds.n_items)  # like the kept scores
        own = None
    out = evaluate_lists(
        scores,
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        rerank_cfg=vspec.rerank,
        parts=("val", "test"),
        features=data.features,
        ks=ks,
        book=own,
    )
    res, lists = out
    for part in res:
        res[part].update({k: v for k, v in metrics[part].items() if is_task_metric(k)})
    return res, lists


def val_metrics(
    spec: RecommenderSpec,
    data: PreparedData,
    scorer: CatalogScorer,
    ks: tuple[int, ...],
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """A scorer's validation metrics (of ``users`` only when given: a rung's fixed sample)."""
    return evaluate_scorer(
        scorer,
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        rerank_cfg=spec.rerank,
        parts=("val",),
        features=data.features,
        ks=ks,
        only_users=users,
    )["val"]


def rung_users(split: Any, n: int) -> np.ndarray:
    """A fixed sample of validation users (the same for every trial of a study, whatever its
    seed), so that rung vectors are comparable and cheap."""
    users = np.unique(split.part("val")["user"].to_numpy())
    return np.sort(np.random.default_rng(0).permutation(users)[:n])
