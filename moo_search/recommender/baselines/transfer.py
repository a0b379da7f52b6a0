"""Warm transfer without fine-tuning: the frozen base encoder's item embeddings mapped onto
the collaborative backbone (a ridge map fitted on warm items, as DropoutNet and Heater map
content onto collaborative factors). It is the fine-tune's ``fusion.new_items: map`` with the
text tower left as it was, so a fine-tune's gain over it is what fine-tuning adds."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["collab_name", "frozen_map", "frozen_vectors"]


def frozen_vectors(ctx: Any) -> np.ndarray:
    """The base encoder's unit-norm item embeddings of the context's item texts (no
    adapter), computed once per context."""
    from moo_search.recommender.baselines.ranking import _texts
    from moo_search.recommender.config import ModelConfig
    from moo_search.recommender.model.content import frozen_item_vectors

    if ctx.frozen is None:
        cfg = ctx.model_cfg if ctx.model_cfg is not None else ModelConfig()
        ctx.frozen = frozen_item_vectors(cfg, _texts(ctx))
    return np.asarray(ctx.frozen)


def collab_name(ctx: Any) -> str:
    """The collaborative baseline a hybrid builds on: EASE where it fits, else SANSA, else
    ItemKNN."""
    from moo_search.recommender.baselines.ranking import ease_fits, sansa_installed

    if ease_fits(ctx.split.n_items):
        return "EASE"
    return "SANSA" if sansa_installed() else "ItemKNN"


def frozen_map(ctx: Any) -> Any:
    """EASE (or the backbone standing in for it) on warm items; a new item scored by the
    user's z-scored backbone row carried to it through the :class:`RidgeMap` over the frozen
    embeddings, the ridge tuned on validation over its whole grid; both z-scored over the
    warm catalog."""
    import torch

    from moo_search.recommender.baselines.ranking import _tuning_metric, _z_warm
    from moo_search.recommender.inference import RIDGE_GRID, RidgeMap

    warm = ctx.split.warm
    collab = ctx.scorer(collab_name(ctx))
    emb = torch.as_tensor(frozen_vectors(ctx), dtype=torch.float64)
    warm_t = torch.as_tensor(warm)
    metric = _tuning_metric(ctx)
    best: tuple[float, float, Any] | None = None
    for ridge in RIDGE_GRID:
        fitted = RidgeMap.fit(emb, warm_t, ridge)

        def score(users: np.ndarray, fitted: RidgeMap = fitted) -> np.ndarray:
            rows = collab(users)
            with torch.no_grad():
                mapped = fitted.scores(torch.as_tensor(rows), emb).numpy()
            return np.where(warm, _z_warm(rows, warm), _z_warm(mapped, warm))

        value = ctx.val_metric(score, metric)
        if best is None or value > best[0]:
            best = (value, ridge, score)
    assert best is not None
    ctx.tuned["Frozen map"] = {"ridge": best[1], "tuned_on": f"val {metric}", "val": best[0]}
    return best[2]
