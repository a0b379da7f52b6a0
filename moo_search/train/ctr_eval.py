"""The task heads on (user, item) pairs: their features from a scored catalog, their refit on
train pairs, and their metrics against a part's pairs (the tasks and labels are defined in
:mod:`moo_search.model.tasks`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from moo_search.data import Split
from moo_search.metrics import auc, logloss
from moo_search.model.inference import CatalogScorer
from moo_search.model.tasks import TASK_FEATURES, task_pairs

__all__ = ["ctr_metrics", "fit_ctr", "fit_task_heads", "pair_features", "task_metrics"]

_LOO = ("user_like", "item_like", "user_offset", "item_offset")


def pair_features(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    *,
    loo: dict[str, np.ndarray] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """Task features of (user, item) pairs (:data:`TASK_FEATURES`); per-user z-scores over the
    full catalog; ``loo``: leave-one-out like-rates and rating offsets per pair (train)."""
    from moo_search.model.recommender import standardise

    model, device = scorer.model, scorer.device
    out = []
    with torch.no_grad():
        for start in range(0, len(users), chunk):
            part = slice(start, start + chunk)
            uu = torch.as_tensor(users[part].copy(), device=device)
            ii = torch.as_tensor(items[part].copy(), device=device)
            uniq, inv = torch.unique(uu, return_inverse=True)
            warm = None if model.warm is None else model.warm.to(device)
            r_z = standardise(model.collaborative(uniq).float(), warm)[inv, ii]
            s_z = None
            if scorer.user_emb is not None:
                s_z = standardise(scorer.semantic(scorer.user_emb[uniq]), warm)[inv, ii]
            kw = {
                k: torch.as_tensor(np.asarray(v[part], dtype=np.float32), device=device)
                for k, v in (loo or {}).items()
                if v is not None
            }
            out.append(model.task_features(uu, ii, r_z, s_z, **kw))
    return torch.cat(out) if out else torch.zeros(0, len(TASK_FEATURES), device=device)


def _train_loo(tdata: Any, split: Split) -> dict[str, np.ndarray]:
    """Leave-one-out like-rates and rating offsets of the train pairs (in split.train order)."""
    from moo_search.model.tasks import split_rating_offsets

    tr = split.train
    offsets = split_rating_offsets(split)
    uo, io = offsets.pair_offsets(
        tr["user"].to_numpy(), tr["item"].to_numpy(), tr["rating"].to_numpy().astype(float)
    )
    return {
        "user_like": tdata.like_user,
        "item_like": tdata.like_item,
        "user_offset": uo,
        "item_offset": io,
    }


def fit_ctr(scorer: CatalogScorer, tdata: Any) -> float:
    """Refit the conversion (CTR) head on every train exposure, on frozen features
    (leave-one-out like-rates, so what it learns on train holds on held-out exposures)."""
    from moo_search.train.ctr import fit_ctr_head

    x = pair_features(
        scorer,
        tdata.users,
        tdata.items,
        loo={"user_like": tdata.like_user, "item_like": tdata.like_item},
    )
    y = torch.as_tensor(tdata.clicks, dtype=torch.float32, device=scorer.device)
    return fit_ctr_head(scorer.model.ctr, x[:, : scorer.model.ctr.linear.in_features], y)


def fit_task_heads(
    scorer: CatalogScorer, tdata: Any, split: Split, *, negatives: int, seed: int
) -> dict[str, float]:
    """Refit the click head (logistic, train interactions against seeded negatives) and the
    satisfaction head (ridge, train ratings) on frozen features; their train losses."""
    from moo_search.train.ctr import fit_logistic, fit_ridge

    heads = scorer.model.tasks
    loo = _train_loo(tdata, split)
    x_pos = pair_features(scorer, tdata.users, tdata.items, loo=loo)
    ratings = torch.as_tensor(
        split.train["rating"].to_numpy().astype(np.float32), device=scorer.device
    )
    out = {"satisfaction_fit_mse": fit_ridge(heads.satisfaction, x_pos, ratings)}
    pairs = task_pairs(split, "train", "click", negatives=negatives, seed=seed)
    n_pos = len(tdata.users)
    x_neg = pair_features(scorer, pairs.users[n_pos:], pairs.items[n_pos:])
    x = torch.cat([x_pos, x_neg])
    y = torch.as_tensor(pairs.y, dtype=torch.float32, device=scorer.device)
    out["click_fit_logloss"] = fit_logistic(heads.click, x, y)
    return out


def ctr_metrics(scorer: CatalogScorer, split: Split, part: str) -> dict[str, float]:
    """The conversion head against the exposures of ``part`` (like = rating >= threshold),
    under its new and its old names."""
    pairs = task_pairs(split, part, "conversion")
    if not len(pairs.y):
        return {}
    x = pair_features(scorer, pairs.users, pairs.items)
    with torch.no_grad():
        p = torch.sigmoid(scorer.model.ctr_logit(x)).float().cpu().numpy()
    a, ll = auc(pairs.y, p), logloss(pairs.y, p)
    return {"conversion_auc": a, "conversion_logloss": ll, "ctr_auc": a, "ctr_logloss": ll}


def task_metrics(
    scorer: CatalogScorer, split: Split, part: str, *, negatives: int, seed: int
) -> dict[str, float]:
    """Every task's metrics on ``part``: click AUC and log loss, conversion AUC and log loss
    (and their old ``ctr_*`` names), satisfaction RMSE."""
    out = ctr_metrics(scorer, split, part)
    if not out:
        return out
    sat = task_pairs(split, part, "satisfaction")
    x = pair_features(scorer, sat.users, sat.items)
    with torch.no_grad():
        pred = scorer.model.tasks.rating(x).float().cpu().numpy()
    out["satisfaction_rmse"] = float(np.sqrt(np.mean((pred - sat.y) ** 2)))
    clicks = task_pairs(split, part, "click", negatives=negatives, seed=seed)
    x = pair_features(scorer, clicks.users, clicks.items)
    with torch.no_grad():
        p = torch.sigmoid(scorer.model.tasks.click_logit(x)).float().cpu().numpy()
    out["click_auc"], out["click_logloss"] = auc(clicks.y, p), logloss(clicks.y, p)
    return out
