"""Fit the CTR head to convergence on frozen features after the ranking fine-tune."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from moo_search.model.recommender import CTRHead

__all__ = ["fit_ctr_head"]


def fit_ctr_head(
    head: CTRHead,
    features: torch.Tensor,
    clicks: torch.Tensor,
    *,
    l2: float = 1e-4,
    max_iter: int = 100,
) -> float:
    """L2-regularised logistic regression of ``clicks`` on ``features`` (all train exposures),
    by L-BFGS from the head's current weights; returns the final training log-loss.

    A small convex problem: fitting it to convergence is what makes the head at least as good
    on train as the like-rate baseline it starts from.
    """
    x = features.detach().float()
    y = clicks.detach().float()
    params = list(head.parameters())
    opt = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head(x), y)
        loss = loss + l2 * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(head(x), y))
