"""Fit the CTR head to convergence on frozen features after the ranking fine-tune."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from moo_search.recommender.model.ctr import CTRHead

__all__ = ["fit_ctr_head", "fit_logistic", "fit_ridge"]


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


def fit_logistic(
    linear: torch.nn.Linear,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    l2: float = 1e-4,
    max_iter: int = 100,
    offset: torch.Tensor | None = None,
) -> float:
    """L2-regularised logistic regression of ``labels`` on ``features`` into ``linear`` (one
    output), by L-BFGS from its current weights; returns the final training log-loss.
    ``offset``: a logit added to the linear output with its coefficient fixed at 1 (what a
    trained part predicts: the fit works around it, it cannot scale it away)."""
    x = features.detach().float()
    y = labels.detach().float()
    off = torch.zeros_like(y) if offset is None else offset.detach().float()
    opt = torch.optim.LBFGS(
        list(linear.parameters()),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(linear(x).squeeze(-1) + off, y)
        loss = loss + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(F.binary_cross_entropy_with_logits(linear(x).squeeze(-1) + off, y))


def fit_ridge(
    linear: torch.nn.Linear,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    l2: float = 1e-3,
    offset: torch.Tensor | None = None,
) -> float:
    """Ridge regression of ``targets`` on ``features`` into ``linear`` (closed form, the
    intercept unpenalised); returns the training mean squared error. ``offset``: a prediction
    added with its coefficient fixed at 1 (the fit is of the residual ``targets - offset``)."""
    x = features.detach().double()
    y = targets.detach().double()
    if offset is not None:
        y = y - offset.detach().double()
    ones = torch.ones(len(x), 1, dtype=x.dtype, device=x.device)
    a = torch.cat([x, ones], 1)
    reg = l2 * len(x) * torch.eye(a.shape[1], dtype=x.dtype, device=x.device)
    reg[-1, -1] = 0.0
    w = torch.linalg.solve(a.T @ a + reg, a.T @ y)
    with torch.no_grad():
        linear.weight.copy_(w[:-1].to(linear.weight.dtype)[None])
        linear.bias.copy_(w[-1:].to(linear.bias.dtype))
        return float(((a @ w - y) ** 2).mean())
