"""Matrix-factorisation baselines from the ``implicit`` library (Frederickson, well kept and
compiled): ALS on implicit feedback (Hu, Koren & Volinsky, ICDM 2008) and BPR (Rendle et al.,
UAI 2009), each tuned on validation over a grid, extended past its edge where the best value
lies there.

Their scores are ``p_u . q_i`` over every item, computed in float64 so that a user's scores
do not depend on the users scored with them (large catalogs are scored in chunks)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.evaluate import Scorer

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


EDGE_STEPS = 2
"""How many steps past the grid's edge a knob may go when its best value is on the edge."""


def _tuned(ctx: Any, kind: str, grid: dict[str, tuple[float, ...]]) -> Scorer:
    """Best of the grid on validation; a knob whose best value is on the grid's edge is then
    moved further that way (by the ratio of its last two values), while validation improves,
    up to :data:`EDGE_STEPS` steps: the grid does not cut a knob's useful range short."""
    x = ctx.split.matrix("train").astype(np.float32).tocsr()
    x.data[:] = 1.0  # implicit feedback: an interaction, whatever its rating
    metric = f"ndcg@{ctx.eval_cfg.k}"
    tried: dict[tuple[float, ...], tuple[float, Scorer]] = {}

    def value(params: dict[str, float]) -> float:
        key = tuple(params[k] for k in grid)
        if key not in tried:
            scorer = _fit(kind, x, params, ctx.seed)
            tried[key] = (ctx.val_metric(scorer, metric), scorer)
        return tried[key][0]

    best = max((dict(zip(grid, values)) for values in itertools.product(*grid.values())), key=value)
    for knob, values in grid.items():
        if len(values) < 2 or best[knob] not in (values[0], values[-1]):
            continue
        up = best[knob] == values[-1]
        ratio = values[-1] / values[-2] if up else values[0] / values[1]
        for _ in range(EDGE_STEPS):
            step = best[knob] * ratio
            if knob == "factors" and not 4 <= step <= 1024:
                break
            cand = {**best, knob: round(step) if knob == "factors" else step}
            if value(cand) <= value(best):
                break
            best = cand
    score = value(best)
    ctx.tuned[kind] = {**best, "tuned_on": f"val {metric}", "val": score}
    logger.info(
        "%s tuned on validation %s over %d settings: %s (%.4f)",
        kind,
        metric,
        len(tried),
        best,
        score,
    )
    return tried[tuple(best[k] for k in grid)][1]


def als(ctx: Any) -> Scorer:
    """ALS on binarised train interactions (implicit), tuned on validation over
    :data:`ALS_GRID`."""
    return _tuned(ctx, "ALS", ALS_GRID)


def bpr(ctx: Any) -> Scorer:
    """BPR matrix factorisation (implicit), tuned on validation over :data:`BPR_GRID`."""
    return _tuned(ctx, "BPR", BPR_GRID)
