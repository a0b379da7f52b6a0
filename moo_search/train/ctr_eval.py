"""The CTR head on (user, item) pairs: its features from a scored catalog, its refit on every
train exposure, and its metrics against held-out exposures."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from moo_search.data import Split
from moo_search.metrics import auc, logloss
from moo_search.model.inference import CatalogScorer

__all__ = ["ctr_metrics", "fit_ctr", "pair_features"]


def pair_features(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    *,
    like: tuple[np.ndarray, np.ndarray] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """CTR features of (user, item) pairs; per-user z-scores over the full catalog."""
    from moo_search.model.recommender import CTR_FEATURES, standardise

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
            kw: dict[str, torch.Tensor] = {}
            if like is not None:
                kw["user_like"] = torch.as_tensor(like[0][part], device=device)
                kw["item_like"] = torch.as_tensor(like[1][part], device=device)
            out.append(model.ctr_features(uu, ii, r_z, s_z, **kw))
    return torch.cat(out) if out else torch.zeros(0, len(CTR_FEATURES), device=device)


def fit_ctr(scorer: CatalogScorer, tdata: Any) -> float:
    """Refit the CTR head on every train exposure, on frozen features (leave-one-out
    like-rates, so what it learns on train holds on held-out exposures)."""
    from moo_search.train.ctr import fit_ctr_head

    x = pair_features(scorer, tdata.users, tdata.items, like=(tdata.like_user, tdata.like_item))
    y = torch.as_tensor(tdata.clicks, dtype=torch.float32, device=scorer.device)
    return fit_ctr_head(scorer.model.ctr, x, y)


def ctr_metrics(scorer: CatalogScorer, split: Split, part: str) -> dict[str, float]:
    """CTR head against the held-out exposures of ``part`` (click = rating >= threshold)."""
    df = split.part(part)
    if len(df) == 0:
        return {}
    x = pair_features(scorer, df["user"].to_numpy(), df["item"].to_numpy())
    with torch.no_grad():
        p = torch.sigmoid(scorer.model.ctr_logit(x)).float().cpu().numpy()
    y = (df["rating"].to_numpy() >= split.threshold).astype(np.float64)
    return {"ctr_auc": auc(y, p), "ctr_logloss": logloss(y, p)}
