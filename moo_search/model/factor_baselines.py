"""Matrix-factorisation baselines from the ``implicit`` library (Frederickson, well kept and
compiled): ALS on implicit feedback (Hu, Koren & Volinsky, ICDM 2008) and BPR (Rendle et al.,
UAI 2009), each tuned on validation over a grid that spans its useful range.

Their scores are ``p_u . q_i`` over every item, computed in float64 so that a user's scores
do not depend on the users scored with them (large catalogs are scored in chunks)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from moo_search.evaluate import Scorer, evaluate_scorer

__all__ = ["ALS_GRID", "BPR_GRID", "als", "bpr"]

logger = logging.getLogger("moo_search")

ALS_GRID: dict[str, tuple[float, ...]] = {
    "factors": (64, 128),
    "regularization": (0.01, 0.1, 1.0),
    "alpha": (1.0, 10.0, 40.0),
}
"""ALS: latent size, L2 weight and confidence scale (c = 1 + alpha r), 15 sweeps."""

BPR_GRID: dict[str, tuple[float, ...]] = {
    "factors": (64, 128),
    "learning_rate": (0.01, 0.05),
    "regularization": (0.001, 0.01),
}
"""BPR: latent size, SGD step and L2 weight, 100 epochs over the train pairs."""


def _factors_scorer(model: Any) -> Scorer:
    p = np.asarray(model.user_factors, dtype=np.float64)
    q = np.asarray(model.item_factors, dtype=np.float64)
    return lambda users: (p[users] @ q.T).astype(np.float32)


def _fit(kind: str, x: sp.csr_matrix, params: dict[str, float], seed: int) -> Scorer:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS ones contend
        if kind == "ALS":
            from implicit.cpu.als import AlternatingLeastSquares

            model: Any = AlternatingLeastSquares(
                factors=int(params["factors"]),
                regularization=params["regularization"],
                alpha=params["alpha"],
                iterations=15,
                random_state=seed,
            )
        else:
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            # one thread: Hogwild SGD over several would make the fit irreproducible
            model = BayesianPersonalizedRanking(
                factors=int(params["factors"]),
                learning_rate=params["learning_rate"],
                regularization=params["regularization"],
                iterations=100,
                num_threads=1,
                random_state=seed,
            )
        model.fit(x, show_progress=False)
    return _factors_scorer(model)


def _tuned(ctx: Any, kind: str, grid: dict[str, tuple[float, ...]]) -> Scorer:
    x = ctx.split.matrix("train").astype(np.float32).tocsr()
    x.data[:] = 1.0  # implicit feedback: an interaction, whatever its rating
    metric = f"ndcg@{ctx.eval_cfg.k}"
    best: tuple[float, dict[str, float], Scorer] | None = None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        scorer = _fit(kind, x, params, ctx.seed)
        res = evaluate_scorer(
            scorer,
            ctx.ds,
            ctx.split,
            eval_cfg=ctx.eval_cfg,
            parts=("val",),
            features=ctx.item_features(),
        )
        assert isinstance(res, dict)
        value = res["val"][metric]
        if best is None or value > best[0]:
            best = (value, params, scorer)
    assert best is not None
    ctx.tuned[kind] = {**best[1], "tuned_on": f"val {metric}", "val": best[0]}
    logger.info("%s tuned on validation %s: %s (%.4f)", kind, metric, best[1], best[0])
    return best[2]


def als(ctx: Any) -> Scorer:
    """ALS on binarised train interactions (implicit), tuned on validation over
    :data:`ALS_GRID`."""
    return _tuned(ctx, "ALS", ALS_GRID)


def bpr(ctx: Any) -> Scorer:
    """BPR matrix factorisation (implicit), tuned on validation over :data:`BPR_GRID`."""
    return _tuned(ctx, "BPR", BPR_GRID)
