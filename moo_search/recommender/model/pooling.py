"""Token states to one embedding per text: the poolings a model family or ``model.pooling``
names. Each reads the attention mask, so left and right padding pool alike."""

from __future__ import annotations

import torch

__all__ = ["first_real_index", "last_real_index", "pool"]


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """(B,) the position of each row's last real token, on left or right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    return (positions * (mask > 0)).argmax(dim=1)


def first_real_index(mask: torch.Tensor) -> torch.Tensor:
    """(B,) the position of each row's first real token (0 on right padding)."""
    return (mask > 0).int().argmax(dim=1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, H) pooled states of ``hidden`` (B, L, H) under ``mask`` (B, L), not normalised.

    ``mean``: over real tokens; ``cls``: the first real token; ``last`` and ``eos``: the last
    real token (for ``eos`` the tokenizer appended an EOS token: E5-Mistral, gte-Qwen2);
    ``weighted_mean``: real tokens weighted by their position 1..n (SGPT, Muennighoff 2022,
    eq. 1), which suits causal models whose later tokens have seen more.
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if how == "cls":
        return hidden[rows, first_real_index(mask)]
    if how in ("last", "eos"):
        return hidden[rows, last_real_index(mask)]
    m = (mask > 0).to(hidden.dtype)
    if how == "weighted_mean":
        m = m * m.cumsum(dim=1)
    elif how != "mean":
        raise ValueError(f"unknown pooling {how!r}")
    w = m.unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
