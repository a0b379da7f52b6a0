"""Collaborative backbones: the score r(u, i) the semantic tower is fused with.

``fusion.cf`` picks one by name from :data:`moo_search.recommender.registries.BACKBONES`:

- ``ease``: EASE (Steck, WWW 2019), closed-form item-item ridge regression on the train
  matrix; lambda tuned on validation over :data:`EASE_LAMBDAS` unless
  ``fusion.cf_params.lambda``.
- ``itemknn``: cosine item-item similarity, top-``fusion.cf_params.neighbours`` per item
  (Sarwar et al., WWW 2001); dense up to :data:`SPARSE_FROM_ITEMS` items, sparse beyond.
- ``sansa``: SANSA (Spisak et al., RecSys 2023), EASE's inverse approximated sparse, for
  catalogs where a dense item x item matrix does not fit; L2 tuned on validation over
  :data:`~moo_search.recommender.model.sparse_weights.SANSA_L2S` unless
  ``fusion.cf_params.l2``. Needs the ``scale`` extra.
- ``mf``: learned ID embeddings trained with the adapter (no closed form, nothing cached;
  ``fusion.cf_params.dim``).

Built-ins register as a plugin does: a :class:`Backbone` with its ``params`` model, and a
``fit`` (closed form) or a ``tower`` (learned).

A closed-form backbone is an item-item matrix W, dense (an array) or kept sparse
(:class:`SparseWeights`, possibly as a product of sparse factors); user scores are
``x_u @ W`` over the user's train row x_u (:func:`user_scores`). W is computed once per
(dataset, split, backbone parameters) and cached on disk, so every trial of a study reuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel

from moo_search.errors import MooSearchError
from moo_search.recommender.model.backbone_cache import (
    _cached,
    _cached_sparse,
    _key,
    split_fingerprint,
)
from moo_search.recommender.model.backbone_params import (
    EaseParams,
    ItemKNNParams,
    SansaParams,
    own_params,
)
from moo_search.recommender.model.cf_towers import IDEmbeddings, MFParams
from moo_search.recommender.model.sparse_weights import (
    SANSA_L2S,
    SPARSE_FROM_ITEMS,
    SparseWeights,
    Weights,
    itemknn_sparse,
    sansa_density,
    sansa_weights,
    user_scores,
)
from moo_search.recommender.registries import BACKBONES

__all__ = [
    "EASE_LAMBDAS",
    "Backbone",
    "FitContext",
    "backbone_weights",
    "ease_weights",
    "itemknn_weights",
    "tune_ease_lambda",
]

logger = logging.getLogger("moo_search")

EASE_LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0)
"""The validation grid for EASE's L2 weight when ``fusion.cf_params.lambda`` is not set."""


EDGE_STEPS = 2
"""How many steps past the L2 grid's edge tuning may go when the best value is on the edge
(by the ratio of the last two values): Book-Crossing's EASE was best at the grid's 50."""

DENSE_BUDGET_GB = 8.0
"""The most memory a dense item x item backbone may take (``MOO_SEARCH_DENSE_GB`` overrides)."""


def _dense_budget_gb() -> float:
    from moo_search.recommender.memory import budget_gb

    return budget_gb("MOO_SEARCH_DENSE_GB", DENSE_BUDGET_GB)


def dense_fits(n_items: int, matrices: int) -> bool:
    """Whether ``matrices`` float64 item x item arrays fit the dense budget."""
    return matrices * 8 * n_items**2 <= _dense_budget_gb() * 2**30


def check_dense(name: str, n_items: int, matrices: int) -> None:
    """Refuse a dense backbone whose ``matrices`` float64 item x item arrays would not fit
    the budget, naming the size and the alternative (before any is allocated)."""
    from moo_search.errors import SpecError

    budget = _dense_budget_gb()
    need = matrices * 8 * n_items**2 / 2**30
    if not dense_fits(n_items, matrices):
        raise SpecError(
            f"{name} is a dense {n_items:,} x {n_items:,} backbone: about {need:.3g} GiB "
            f"({matrices} float64 matrices), over the {budget:g} GiB budget "
            "(MOO_SEARCH_DENSE_GB). Use fusion.cf: sansa (sparse EASE), itemknn (kept sparse "
            f"from {SPARSE_FROM_ITEMS:,} items on), mf (learned, memory linear in items) or a "
            "smaller catalog (e.g. a larger data.params.k_core)",
            field="fusion.cf",
        )


def ease_weights(x: sp.spmatrix, lam: float) -> np.ndarray:
    """EASE's closed form: P = (X^T X + lam I)^-1, B = I - P diagMat(1 / diag(P)), diag(B) = 0
    (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019, eq. 8)."""
    check_dense("ease", x.shape[1], 3)
    g = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def itemknn_weights(x: sp.spmatrix, neighbours: int = 100) -> np.ndarray:
    """Cosine item-item similarity on train, top-``neighbours`` per item (Sarwar et al., 2001)."""
    check_dense("itemknn", x.shape[1], 2)
    x = x.astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
    sim = (x.T @ x).toarray() / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[1]:
        cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
        sim[sim < cut] = 0.0
    return sim.astype(np.float32)


@dataclass(frozen=True)
class FitContext:
    """What a backbone is fit on: the split's train matrix (users x items), the split's
    fingerprint (the cache key's half that names the data), features, evaluation config (for
    tuning on validation) and the backbone's own knobs (``params``: ``fusion.cf_params``
    validated by its params model; None for a backbone without one)."""

    split: Any
    x: sp.csr_matrix
    fingerprint: str
    features: np.ndarray
    eval_cfg: Any
    params: Any

    def cached(
        self,
        name: str,
        params: dict[str, Any],
        compute: Callable[[], np.ndarray],
        shape: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """``compute()`` once per (split, ``name``, ``params``), then from the disk cache
        (an entry not of ``shape`` is recomputed)."""
        return _cached(_key(self.fingerprint, name, params), compute, shape)

    def cached_sparse(
        self, name: str, params: dict[str, Any], compute: Callable[[], SparseWeights]
    ) -> SparseWeights:
        """:meth:`cached` for sparse weights (stored as their CSR arrays)."""
        return _cached_sparse(_key(self.fingerprint, name, params), compute)


@dataclass(frozen=True)
class Backbone:
    """A registered collaborative backbone: ``fit(ctx) -> (W, params used)`` for a closed
    form, or no ``fit`` for one learned with the adapter: the built-in ID embeddings (mf), or
    ``tower(n_users, n_items, params) -> nn.Module`` with ``forward(users, items=None)`` (full
    catalog rows, or one score per pair) and ``from_history(item indices) -> (n_items,)`` (a
    new user). ``params`` is the model of its own knobs, set (and searched) at
    ``fusion.cf_params.<knob>``; ``fit`` reads them as ``ctx.params``, ``tower`` as its third
    argument."""

    name: str
    fit: Callable[[FitContext], tuple[Weights, dict[str, Any]]] | None
    description: str
    params: type[BaseModel] | None = None
    tower: Callable[[int, int, Any], Any] | None = None


def tune_ease_lambda(
    split: Any,
    *,
    features: np.ndarray,
    eval_cfg: Any,
    grid: tuple[float, ...] = EASE_LAMBDAS,
    fit: Callable[[sp.csr_matrix, float], Any] = ease_weights,
    name: str = "EASE",
) -> tuple[float, dict[float, float]]:
    """The L2 weight of ``grid`` with the best validation ndcg@k (k = ``eval_cfg.k``) for
    ``fit(x, lambda)`` (EASE, or SANSA's approximation of it)."""
    from moo_search.recommender.evaluate import evaluate_scorer

    x = split.matrix("train").astype(np.float64).tocsr()
    scores: dict[float, float] = {}
    metric = f"ndcg@{eval_cfg.k}"

    def evaluate(lam: float) -> float:
        w = fit(x, lam)

        def score(users: np.ndarray, w: Weights = w) -> np.ndarray:
            return user_scores(x[users], w)

        res = evaluate_scorer(
            score,
            None,
            split,
            eval_cfg=eval_cfg,
            parts=("val",),
            features=features,
        )
        scores[float(lam)] = float(res["val"][metric])
        return scores[float(lam)]

    for lam in grid:
        evaluate(lam)
    best = max(scores, key=lambda k: scores[k])
    # a best value on the grid's edge: keep going that way while validation improves
    for edge, ratio in ((grid[0], grid[0] / grid[1]), (grid[-1], grid[-1] / grid[-2])):
        for _ in range(EDGE_STEPS if best == edge and len(grid) > 1 else 0):
            nxt = best * ratio
            if evaluate(nxt) <= scores[best]:
                break
            best = nxt
    logger.info("%s lambda tuned on validation %s: %s -> %g", name, metric, scores, best)
    return best, scores


def _fit_ease(ctx: FitContext) -> tuple[Weights, dict[str, Any]]:
    params: dict[str, Any] = {}
    lam = ctx.params.lambda_
    n = ctx.split.n_items
    check_dense("ease", n, 1)  # a cached W is loaded whole: the budget holds for it too

    def fit(x: Any, lam: float) -> np.ndarray:  # each lambda's W cached: tuning reuses them
        return ctx.cached("ease", {"lambda": float(lam)}, lambda: ease_weights(x, lam), (n, n))

    if lam is None:
        k = ctx.eval_cfg.k
        chosen = ctx.cached(
            "ease-lambda",
            {"grid": EASE_LAMBDAS, "k": k, "edge_steps": EDGE_STEPS},
            lambda: np.array(
                [
                    tune_ease_lambda(
                        ctx.split, features=ctx.features, eval_cfg=ctx.eval_cfg, fit=fit
                    )[0]
                ]
            ),
            shape=(1,),
        )
        lam = float(chosen[0])
        params["tuned_on"] = f"val ndcg@{k} over {list(EASE_LAMBDAS)}"
    params["lambda"] = float(lam)
    return fit(ctx.x, float(lam)), params


def _fit_itemknn(ctx: FitContext) -> tuple[Weights, dict[str, Any]]:
    n = int(ctx.params.neighbours)
    params = {"neighbours": n}
    n_items = ctx.split.n_items
    if n_items >= SPARSE_FROM_ITEMS:
        w = ctx.cached_sparse("itemknn-sparse", params, lambda: itemknn_sparse(ctx.x, n))
        return w, {**params, "sparse": True}
    shape = (n_items, n_items)
    check_dense("itemknn", n_items, 1)  # a cached W is loaded whole: the budget holds for it
    return ctx.cached("itemknn", params, lambda: itemknn_weights(ctx.x, n), shape), params


def _fit_sansa(ctx: FitContext) -> tuple[Weights, dict[str, Any]]:
    own: SansaParams = ctx.params
    density = sansa_density(ctx.split.n_items, own.density)
    params: dict[str, Any] = {"density": density}
    lam = own.l2

    def fit(x: sp.csr_matrix, lam: float) -> SparseWeights:
        return sansa_weights(x, lam, density)

    if lam is None:
        k = ctx.eval_cfg.k
        chosen = ctx.cached(
            "sansa-l2",
            {"grid": SANSA_L2S, "k": k, "density": density, "edge_steps": EDGE_STEPS},
            lambda: np.array(
                [
                    tune_ease_lambda(
                        ctx.split,
                        features=ctx.features,
                        eval_cfg=ctx.eval_cfg,
                        grid=SANSA_L2S,
                        fit=fit,
                        name="SANSA",
                    )[0]
                ]
            ),
            shape=(1,),
        )
        lam = float(chosen[0])
        params["tuned_on"] = f"val ndcg@{k} over {list(SANSA_L2S)}"
    params["l2"] = float(lam)
    w = ctx.cached_sparse(
        "sansa", {"l2": float(lam), "density": density}, lambda: fit(ctx.x, float(lam))
    )
    return w, params


BACKBONES.register(
    "ease",
    Backbone(
        "ease", _fit_ease, "EASE, closed-form item-item ridge (Steck 2019)", params=EaseParams
    ),
)
BACKBONES.register(
    "itemknn",
    Backbone(
        "itemknn", _fit_itemknn, "cosine item-item kNN (Sarwar et al. 2001)", params=ItemKNNParams
    ),
)
BACKBONES.register(
    "sansa",
    Backbone(
        "sansa",
        _fit_sansa,
        "SANSA, EASE with a sparse approximate inverse (Spisak 2023)",
        params=SansaParams,
    ),
)
BACKBONES.register(
    "mf",
    Backbone(
        "mf",
        None,
        "learned ID embeddings, trained with the adapter",
        params=MFParams,
        tower=IDEmbeddings,
    ),
)


def backbone_weights(
    name: str,
    *,
    split: Any,
    features: np.ndarray,
    eval_cfg: Any,
    params: dict[str, Any] | None = None,
) -> tuple[Weights | None, dict[str, Any]]:
    """(item-item W or None for a learned backbone, the parameters used), cached on disk.

    The cache key is the split's content (:func:`split_fingerprint`) and the backbone's
    parameters (for a tuned EASE: the grid and the evaluation k, then the chosen lambda).
    ``params`` are its own knobs (``fusion.cf_params``; None: its defaults).
    """
    backbone: Backbone = BACKBONES.get(name)
    if backbone.fit is None:
        return None, {}
    ctx = FitContext(
        split=split,
        x=split.matrix("train").astype(np.float64).tocsr(),
        fingerprint=split_fingerprint(split),
        features=features,
        eval_cfg=eval_cfg,
        params=own_params(name, params),
    )
    try:
        return backbone.fit(ctx)
    except (MooSearchError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # a third-party solver (sansa, scipy, a plugin's fit)
        from moo_search.errors import TrialFailed

        raise TrialFailed(
            f"backbone {name!r} (fusion.cf) failed to fit with "
            f"{f'fusion.cf_params {params}' if params else 'its defaults'}: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
