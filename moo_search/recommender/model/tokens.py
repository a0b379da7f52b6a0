"""Tokenize once per (tokenizer, max length, texts); batch without global padding."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

__all__ = ["TokenTable", "tokenize_cached"]


class TokenTable:
    """Token ids of many texts, unpadded; ``batch(idx)`` pads to the batch's own maximum."""

    def __init__(self, ids: list[list[int]], pad_id: int) -> None:
        self.ids = ids
        self.lengths = np.array([len(x) for x in ids], dtype=np.int64)
        self.pad_id = pad_id
        width = int(self.lengths.max()) if len(ids) else 1
        self._dense = np.full((len(ids), width), pad_id, dtype=np.int64)
        for i, x in enumerate(ids):
            self._dense[i, : len(x)] = x

    @property
    def dense(self) -> np.ndarray:
        """(N, max length) token ids, padded with the pad id."""
        return self._dense

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[idx].max())
        ids = torch.from_numpy(self._dense[idx, :width].copy())
        mask = (torch.arange(width)[None, :] < torch.from_numpy(self.lengths[idx])[:, None]).long()
        return ids, mask

    def tokens(self, idx: np.ndarray) -> int:
        return int(self.lengths[idx].sum())

    def length_buckets(self, batch_size: int) -> list[np.ndarray]:
        """Index batches of similar length (for no-grad encoding of a whole table)."""
        order = np.argsort(self.lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


_CACHE: OrderedDict[str, TokenTable] = OrderedDict()
_CACHE_SIZE = 8


def tokenize_cached(tokenizer: Any, texts: list[str], max_length: int) -> TokenTable:
    """The :class:`TokenTable` of ``texts``, from an in-process LRU keyed by content."""
    h = hashlib.sha256()
    h.update(
        f"{getattr(tokenizer, 'name_or_path', '')}|{type(tokenizer).__name__}|{max_length}".encode()
    )
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    key = h.hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    table = TokenTable(list(enc["input_ids"]), int(tokenizer.pad_token_id or 0))
    _CACHE[key] = table
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return table
