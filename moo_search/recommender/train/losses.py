"""The four loss terms; the trial weights them (weights normalised to sum to 1)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "bpr_loss",
    "ctr_loss",
    "diversity_loss",
    "normalised_weights",
    "novelty_loss",
    "softmax_loss",
]


def normalised_weights(**weights: float) -> dict[str, float]:
    """The loss weights divided by their sum (``loss.weights``: one per registered term)."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("loss.weights: at least one loss weight must be > 0, got all zero")
    return {name: w / total for name, w in weights.items()}


def softmax_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Full-catalog softmax cross-entropy (sampled softmax when logits cover a sample)."""
    return F.cross_entropy(logits, target)


def bpr_loss(
    logits: torch.Tensor, target: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """BPR (Rendle et al., UAI 2009) with one uniform negative per row."""
    neg = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=generator).to(
        logits.device
    )
    rows = torch.arange(logits.shape[0], device=logits.device)
    return -F.logsigmoid(logits[rows, target] - logits[rows, neg]).mean()


def ctr_loss(logit: torch.Tensor, click: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on exposures (rated items; click = rating >= threshold)."""
    return F.binary_cross_entropy_with_logits(logit, click)


def diversity_loss(probs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Expected feature cosine of two items drawn from the recommendation distribution.

    With unit-norm item features g, E[cos(g_i, g_j)] = ||sum_i p_i g_i||^2; minimising it
    spreads probability mass over dissimilar items (a differentiable ILD surrogate).
    """
    centroid = probs @ features
    return (centroid * centroid).sum(-1).mean()


def novelty_loss(probs: torch.Tensor, self_information: torch.Tensor) -> torch.Tensor:
    """Negative expected self-information -log2(pop_i) under the distribution, scaled to [-1, 0]."""
    return -(probs @ self_information).mean() / self_information.max().clamp_min(1e-8)
