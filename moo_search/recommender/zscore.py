"""The per-user z-score that puts the text and collaborative scores on one scale (fusion) and
scores new items against the warm catalog's mean and deviation."""

from __future__ import annotations

from typing import Any

__all__ = ["standardise"]


def standardise(x: Any, warm: Any = None) -> Any:
    """Per-row z-score of a tensor over the last axis (the catalog), with the mean and
    deviation of the ``warm`` columns where given (so a new item's score never depends on
    other new items); constant rows become 0."""
    ref = x if warm is None else x[..., warm]
    mean = ref.mean(-1, keepdim=True)
    std = ref.std(-1, keepdim=True, unbiased=False)
    return (x - mean) / std.clamp_min(1e-6)
