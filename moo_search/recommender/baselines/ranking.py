"""Reference recommenders: Random, MostPop, ItemKNN, BPR and ALS (``implicit``), EASE (or
SANSA where a dense EASE does not fit the catalog); the content baselines
TF-IDF item-kNN, the frozen base encoder (item-kNN over its embeddings: is fine-tuning worth
it?) and, under the item-cold protocol, a hybrid (EASE for warm items, content for new
ones); and the count-based like-rate CTR baseline.

They share the split and the metric code with the trials, and become the reference markers
and the reference front on the dashboard (:mod:`moo_search.recommender.reference`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moo_search.errors import MooSearchError
from moo_search.recommender.baselines.entry import Baseline
from moo_search.recommender.baselines.factors import als, bpr
from moo_search.recommender.baselines.transfer import collab_name, frozen_map, frozen_vectors
from moo_search.recommender.config import EvalConfig
from moo_search.recommender.data import Dataset, Split
from moo_search.recommender.evaluate import Scorer, evaluate_scorer
from moo_search.recommender.memory import PeakRSS
from moo_search.recommender.metrics import auc, logloss
from moo_search.recommender.registries import BASELINES

__all__ = [
    "CTR_BASELINE",
    "BaselineContext",
    "BaselineFailed",
    "baseline_names",
    "ease",
    "evaluate_baselines",
    "frozen_encoder",
    "hybrid",
    "item_knn",
    "like_rate_ctr",
    "most_pop",
    "random_scores",
    "sansa",
    "tfidf_knn",
]

logger = logging.getLogger("moo_search")

CTR_BASELINE = "LikeRate"
"""The name of the like-rate baseline's row (it has conversion metrics only)."""
COUNT_BASELINE = "Counts"
"""The count baseline of every business task in one row (popularity for click, like-rates
for conversion, mean ratings for satisfaction)."""


class BaselineFailed(MooSearchError):
    """A baseline (a plugin's, or a solver under it) raised: it is left out, the study goes on."""


@dataclass
class BaselineContext:
    """What a baseline may read: the split, the dataset (fingerprint, features), eval, and
    for the content baselines the item texts and the study's base encoder config."""

    ds: Dataset
    split: Split
    eval_cfg: EvalConfig
    seed: int = 0
    features: np.ndarray | None = None
    item_texts: list[str] | None = None
    model_cfg: Any = None
    ks: tuple[int, ...] = ()  # list-metric cut-offs besides eval.k (the study's objectives)
    tuned: dict[str, Any] = field(default_factory=dict)  # what each baseline chose on val
    frozen: Any = None  # the base encoder's item embeddings, once computed
    cold_tasks: Any = None  # the new-item task baselines on val and test, once computed
    failed: dict[str, str] = field(default_factory=dict)  # baseline -> why it is left out
    _scorers: dict[str, Scorer] = field(default_factory=dict, repr=False)

    def scorer(self, name: str) -> Scorer:
        """Baseline ``name`` fit on this context (once; the hybrid reuses its parts); one
        that fails is left out of every comparison (:meth:`fail`)."""
        if name in self.failed:
            raise BaselineFailed(f"baseline {name!r} failed: {self.failed[name]}")
        if name not in self._scorers:
            try:
                self._scorers[name] = BASELINES.get(name).fit(self)
            except Exception as e:
                raise self.fail(name, e) from e
        return self._scorers[name]

    def fail(self, name: str, e: BaseException) -> BaselineFailed:
        """Record that baseline ``name`` failed (one warning naming it and the error)."""
        if name not in self.failed:
            first = str(e).splitlines()[0] if str(e) else ""
            self.failed[name] = f"{type(e).__name__}: {first}"
            logger.warning("baseline %r failed (%s); left out of the comparison", name, first)
        return BaselineFailed(f"baseline {name!r} failed: {self.failed[name]}")

    def val_metric(self, scorer: Scorer, metric: str) -> float:
        """``scorer``'s validation ``metric`` (what a baseline is tuned on; -inf if absent)."""
        res = evaluate_scorer(
            scorer,
            self.ds,
            self.split,
            eval_cfg=self.eval_cfg,
            parts=("val",),
            features=self.item_features(),
        )
        return float(res["val"].get(metric, float("-inf")))

    def item_features(self) -> np.ndarray:
        if self.features is None:
            self.features = self.ds.item_features()
        return self.features

    @classmethod
    def of(cls, spec: Any, data: Any) -> BaselineContext:
        """The context of a study's default trial (``data``: its ``PreparedData``)."""
        return cls(
            ds=data.ds,
            split=data.split,
            eval_cfg=spec.eval,
            seed=spec.seed,
            features=data.features,
            item_texts=data.item_texts,
            model_cfg=spec.model,
            ks=spec.requested_ks(),
        )


def random_scores(ctx: BaselineContext) -> Scorer:
    from moo_search.recommender.memory import scores_fit

    n_users, n_items = ctx.split.n_users, ctx.split.n_items
    if scores_fit(n_users, n_items):
        rng = np.random.default_rng(ctx.seed)
        table = rng.random((n_users, n_items))
        return lambda users: table[users]
    # a large catalog: each user's row from its own seeded stream, never the whole table
    return lambda users: np.stack(
        [np.random.default_rng([ctx.seed, int(u)]).random(n_items) for u in users]
    )


def most_pop(ctx: BaselineContext) -> Scorer:
    _, counts = ctx.split.train_counts()
    pop = counts.astype(np.float64)
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def _item_item(ctx: BaselineContext, name: str) -> Scorer:
    from moo_search.recommender.model.backbones import backbone_weights
    from moo_search.recommender.model.sparse_weights import user_scores

    w, _ = backbone_weights(
        name,
        split=ctx.split,
        features=ctx.item_features(),
        eval_cfg=ctx.eval_cfg,
    )
    assert w is not None
    x = ctx.split.matrix("train").astype(np.float32).tocsr()
    return lambda users: user_scores(x[users], w)


def item_knn(ctx: BaselineContext) -> Scorer:
    """Cosine item-item similarity on train, top-100 per item (Sarwar et al., 2001)."""
    return _item_item(ctx, "itemknn")


def ease(ctx: BaselineContext) -> Scorer:
    """EASE (Steck, WWW 2019), lambda tuned on validation ndcg@k."""
    return _item_item(ctx, "ease")


def sansa(ctx: BaselineContext) -> Scorer:
    """SANSA (Spisak et al., RecSys 2023): EASE with a sparse approximate inverse, L2 tuned
    on validation ndcg@k; the EASE of catalogs where the dense one does not fit."""
    return _item_item(ctx, "sansa")


def sansa_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("sansa") is not None


def ease_fits(n_items: int) -> bool:
    """Whether dense EASE fits this catalog (else SANSA stands in for it)."""
    from moo_search.recommender.model.backbones import dense_fits

    return dense_fits(n_items, 3)


def _tuning_metric(ctx: BaselineContext) -> str:
    """What a content baseline is tuned on: validation ndcg@k of the held-out items under the
    item-cold protocol (what content is for), else of the warm catalog."""
    k = ctx.eval_cfg.k
    return f"cold_item/ndcg@{k}" if ctx.split.has_cold_items else f"ndcg@{k}"


def _tuned_content(ctx: BaselineContext, name: str, vectors: Any) -> Scorer:
    """Content item-kNN over ``vectors`` with its neighbour limit chosen on validation."""
    from moo_search.recommender.model.content import KNN_NEIGHBOURS, content_knn, dense_fits

    x = ctx.split.matrix("train")
    metric = _tuning_metric(ctx)
    best: tuple[float, Any, Scorer] | None = None
    # every warm item as a neighbour (None) needs the dense items x items similarity
    grid = KNN_NEIGHBOURS if dense_fits(ctx.split.n_items) else [n for n in KNN_NEIGHBOURS if n]
    for n in grid:
        scorer = content_knn(vectors, x, ctx.split.warm, neighbours=n)
        value = ctx.val_metric(scorer, metric)
        if best is None or value > best[0]:
            best = (value, n, scorer)
    assert best is not None
    ctx.tuned[name] = {"neighbours": best[1], "tuned_on": f"val {metric}", "val": best[0]}
    return best[2]


def _texts(ctx: BaselineContext) -> list[str]:
    if ctx.item_texts is None:
        from moo_search.recommender.data import render_items

        ctx.item_texts = render_items(ctx.ds)
    return ctx.item_texts


def tfidf_knn(ctx: BaselineContext) -> Scorer:
    """Item-kNN over TF-IDF vectors of the item texts (scikit-learn), neighbours tuned on
    validation."""
    from moo_search.recommender.model.content import tfidf_item_vectors

    return _tuned_content(ctx, "TF-IDF", tfidf_item_vectors(_texts(ctx)))


def frozen_encoder(ctx: BaselineContext) -> Scorer:
    """Item-kNN over the study's base encoder's embeddings of the item texts, no adapter and
    no fine-tuning; neighbours tuned on validation."""
    return _tuned_content(ctx, "Frozen encoder", frozen_vectors(ctx))


def _z_warm(scores: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """Per-row z-score with the mean and deviation of the warm columns."""
    w = scores[:, warm]
    return (scores - w.mean(1, keepdims=True)) / np.maximum(w.std(1, keepdims=True), 1e-6)


def hybrid(ctx: BaselineContext) -> Scorer:
    """EASE on warm items, the content baseline that ranks validation's held-out items better
    (TF-IDF or the frozen encoder) on new ones, each z-scored over the warm catalog so the two
    share one scale."""
    warm = ctx.split.warm
    scorers = {n: ctx.scorer(n) for n in ("TF-IDF", "Frozen encoder")}
    pick = max(scorers, key=lambda n: ctx.tuned[n]["val"])
    ctx.tuned["Hybrid"] = {"content": pick, "tuned_on": ctx.tuned[pick]["tuned_on"]}
    collab = ctx.scorer(collab_name(ctx))
    content = scorers[pick]

    def score(users: np.ndarray) -> np.ndarray:
        return np.where(warm, _z_warm(collab(users), warm), _z_warm(content(users), warm))

    return score


for _name, _baseline in (
    ("Random", Baseline(fit=random_scores, description="Uniform random scores.")),
    ("MostPop", Baseline(fit=most_pop, description="Train popularity.")),
    ("ItemKNN", Baseline(fit=item_knn, description="Item-kNN, neighbours tuned on validation.")),
    ("BPR", Baseline(fit=bpr, description="BPR-MF (implicit), factors tuned on validation.")),
    ("ALS", Baseline(fit=als, description="iALS (implicit), factors tuned on validation.")),
    (
        "EASE",
        Baseline(fit=ease, description="EASE, lambda tuned on validation.", catalog="dense"),
    ),
    (
        "SANSA",
        Baseline(
            fit=sansa,
            description="SANSA: EASE with a sparse approximate inverse, where dense EASE "
            "does not fit.",
            catalog="large",
            requires=("sansa",),
        ),
    ),
    ("TF-IDF", Baseline(fit=tfidf_knn, description="TF-IDF item-kNN over the item texts.")),
    (
        "Frozen encoder",
        Baseline(fit=frozen_encoder, description="Item-kNN over the base encoder's embeddings."),
    ),
    (
        "Hybrid",
        Baseline(
            fit=hybrid,
            description="EASE for warm items, the better content baseline for new ones.",
            cold_only=True,
        ),
    ),
    (
        "Frozen map",
        Baseline(
            fit=frozen_map,
            description="EASE for warm items; new ones through a ridge map from the base "
            "encoder's embeddings onto EASE (warm transfer, no fine-tuning).",
            cold_only=True,
        ),
    ),
):  # in this order: the tables and the dashboard list them so
    BASELINES.register(_name, _baseline)


def baseline_names(split: Split) -> tuple[str, ...]:
    """The ranking baselines a study on ``split`` records, by each one's flags: EASE where
    it fits, else SANSA in its place; the hybrid under the item-cold protocol."""
    dense = ease_fits(split.n_items)
    if not dense and not sansa_installed():
        logger.warning(
            "no EASE-like baseline: dense EASE does not fit %d items and SANSA needs the "
            "'scale' extra (pip install 'moo-search[scale]')",
            split.n_items,
        )
    return tuple(
        name
        for name, b in BASELINES.items()
        if b.applies(cold_items=split.has_cold_items, dense_fits=dense)
    )


def like_rate_ctr(
    split: Split, parts: tuple[str, ...] = ("val", "test")
) -> dict[str, dict[str, float]]:
    """The count CTR baseline on each part's exposures: smoothed train like-rate of the user
    plus that of the item (logits), no learning."""
    from moo_search.recommender.model.ctr import like_rate_logits, split_like_rates

    rates = split_like_rates(split)
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        df = split.part(part)
        if len(df) == 0:
            continue
        z = like_rate_logits(rates, df["user"].to_numpy(), df["item"].to_numpy())
        p = 1.0 / (1.0 + np.exp(-z))
        y = (df["rating"].to_numpy() >= split.threshold).astype(np.float64)
        a, ll = auc(y, p), logloss(y, p)
        out[part] = {"conversion_auc": a, "conversion_logloss": ll, "ctr_auc": a, "ctr_logloss": ll}
    return out


def evaluate_baselines(
    ctx: BaselineContext,
    *,
    names: tuple[str, ...] | None = None,
    ctr: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{baseline: {"val": metrics, "test": metrics}}``, plus the like-rate CTR row; every
    ranking row carries its fit-and-score time as ``cost/seconds`` and the process's peak
    resident memory meanwhile as ``cost/peak_rss_mb``; ``progress`` is told of each one
    as it finishes (names: by default
    :func:`baseline_names` of the split)."""
    from moo_search.recommender.baselines.tasks import count_task_baselines, score_click_auc

    ds, split, eval_cfg = ctx.ds, ctx.split, ctx.eval_cfg
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names if names is not None else baseline_names(split):
        t0 = time.perf_counter()
        try:
            with PeakRSS() as peak:
                scorer = ctx.scorer(name)
                res = evaluate_scorer(
                    scorer, ds, split, eval_cfg=eval_cfg, features=ctx.item_features(), ks=ctx.ks
                )
        except Exception as e:  # its fit, its scores or a metric on its lists
            ctx.fail(name, e)
            continue
        secs = time.perf_counter() - t0
        if progress is not None:
            progress(f"{name}: {secs:.1f}s, peak RSS {peak.mib / 1024:.2f} GiB")
        for part_name, part in res.items():
            part["cost/seconds"] = secs
            part["cost/peak_rss_mb"] = peak.mib
            # its scores as a click model (rank-based: AUC needs no calibration)
            part["click_auc"] = score_click_auc(scorer, ctx, part_name)
        out[name] = res
    if ctr:
        out[CTR_BASELINE] = like_rate_ctr(split)
        out[COUNT_BASELINE] = count_task_baselines(ctx)
        if split.has_cold_items:  # the tasks on new items
            from moo_search.recommender.baselines.cold_tasks import add_cold_task_baselines

            add_cold_task_baselines(ctx, out)
    return out
