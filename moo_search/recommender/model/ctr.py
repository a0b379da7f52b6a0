"""The conversion (CTR) task's parts: click-through features, the count-based like-rate baseline
and the conversion head.

A "click" is an exposure (a rated item) with rating >= the relevance threshold. The like-rate
of a user (an item) is its smoothed share of clicks among its train exposures,
``(clicks + m * g) / (exposures + m)`` with the global rate g and prior strength m (additive
smoothing towards the mean; a Beta(m g, m (1 - g)) prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CTR_FEATURES",
    "CTRHead",
    "ConversionHead",
    "LikeRates",
    "like_rate_logits",
    "like_rates",
    "split_like_rates",
]

PRIOR_STRENGTH = 5.0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class LikeRates:
    """Smoothed train like-rates as logits, and the pieces needed for leave-one-out."""

    user_logit: np.ndarray  # (U,)
    item_logit: np.ndarray  # (I,)
    global_logit: float
    user_clicks: np.ndarray
    user_n: np.ndarray
    item_clicks: np.ndarray
    item_n: np.ndarray
    global_rate: float
    prior: float = PRIOR_STRENGTH

    def pair_logits(
        self, users: np.ndarray, items: np.ndarray, clicks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) like-rate logits of each pair; with ``clicks`` (train pairs) the pair's
        own exposure is left out, so a model fit on train sees what it will see on test."""
        if clicks is None:
            return self.user_logit[users], self.item_logit[items]
        m, g = self.prior, self.global_rate
        u = (self.user_clicks[users] - clicks + m * g) / (self.user_n[users] - 1 + m)
        i = (self.item_clicks[items] - clicks + m * g) / (self.item_n[items] - 1 + m)
        return _logit(u), _logit(i)


def like_rates(
    users: np.ndarray,
    items: np.ndarray,
    clicks: np.ndarray,
    *,
    n_users: int,
    n_items: int,
    prior: float = PRIOR_STRENGTH,
) -> LikeRates:
    """Like-rates of every user and item from train exposures (``clicks`` 0/1 per pair)."""
    clicks = np.asarray(clicks, dtype=np.float64)
    g = float(clicks.mean()) if len(clicks) else 0.5
    uc = np.bincount(users, weights=clicks, minlength=n_users)
    un = np.bincount(users, minlength=n_users).astype(np.float64)
    ic = np.bincount(items, weights=clicks, minlength=n_items)
    inn = np.bincount(items, minlength=n_items).astype(np.float64)
    return LikeRates(
        user_logit=_logit((uc + prior * g) / (un + prior)),
        item_logit=_logit((ic + prior * g) / (inn + prior)),
        global_logit=float(_logit(np.array([g]))[0]),
        user_clicks=uc,
        user_n=un,
        item_clicks=ic,
        item_n=inn,
        global_rate=g,
        prior=prior,
    )


def like_rate_logits(rates: LikeRates, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The count baseline: user logit + item logit - global logit (no learning)."""
    u, i = rates.pair_logits(users, items)
    return u + i - rates.global_logit


def split_like_rates(split: Any) -> LikeRates:
    """Like-rates from a split's train exposures (click = rating >= its threshold)."""
    tr = split.train
    return like_rates(
        tr["user"].to_numpy(),
        tr["item"].to_numpy(),
        (tr["rating"].to_numpy() >= split.threshold).astype(np.float64),
        n_users=split.n_users,
        n_items=split.n_items,
    )


CTR_FEATURES = ("user_like_rate", "item_like_rate", "log_pop", "collaborative", "semantic")
"""The conversion head's inputs, in order."""


class ConversionHead(nn.Module):
    """Logistic regression over :data:`CTR_FEATURES`; it starts as the like-rate baseline
    (weights 1, 1 on the like-rate logits, bias -global logit) and only learns from there."""

    def __init__(self, global_logit: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(len(CTR_FEATURES), 1)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0, :2] = 1.0
            self.linear.bias.fill_(-global_logit)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.to(self.linear.weight.dtype)).squeeze(-1)


CTRHead = ConversionHead
"""The conversion head's old name (a model's ``ctr.*`` weights keep theirs: bundles load)."""
