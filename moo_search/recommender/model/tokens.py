"""Tokenize once per (tokenizer, max length, texts); batch without global padding."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

__all__ = ["TokenTable", "text_table", "tokenize_cached"]


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

    def batch(self, idx: np.ndarray, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of rows ``idx``, padded to their own longest (on the left
        with ``left``, as some decoders' batches are)."""
        width = int(self.lengths[idx].max())
        dense = self._dense[idx, :width]
        lengths = self.lengths[idx]
        real = np.arange(width)[None, :] < lengths[:, None]
        if left:
            shift = (width - lengths)[:, None]
            cols = (np.arange(width)[None, :] - shift) % width
            dense = np.take_along_axis(dense, cols, axis=1)
            real = np.arange(width)[None, :] >= shift
        ids = torch.from_numpy(np.ascontiguousarray(dense))
        mask = torch.from_numpy(real.astype(np.int64))
        return ids, mask

    def tokens(self, idx: np.ndarray) -> int:
        return int(self.lengths[idx].sum())

    def length_buckets(self, batch_size: int) -> list[np.ndarray]:
        """Index batches of similar length (for no-grad encoding of a whole table)."""
        order = np.argsort(self.lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


_CACHE: OrderedDict[str, TokenTable] = OrderedDict()
_CACHE_SIZE = 8


def tokenize_cached(
    tokenizer: Any, texts: list[str], max_length: int, *, append: int | None = None
) -> TokenTable:
    """The :class:`TokenTable` of ``texts``, from an in-process LRU keyed by content;
    ``append``: a token id ending every text (its EOS, for ``eos`` pooling), kept within
    ``max_length``."""
    h = hashlib.sha256()
    h.update(
        f"{getattr(tokenizer, 'name_or_path', '')}|{type(tokenizer).__name__}|{max_length}"
        f"|{append}".encode()
    )
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    key = h.hexdigest()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    table = tokenize(tokenizer, texts, max_length, append=append)
    _CACHE[key] = table
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return table


def tokenize(
    tokenizer: Any, texts: list[str], max_length: int, *, append: int | None = None
) -> TokenTable:
    """:func:`tokenize_cached` without the cache (one request's texts)."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    ids = [list(x) for x in enc["input_ids"]]
    if append is not None:
        ids = [x if x and x[-1] == append else [*x[: max_length - 1], append] for x in ids]
    pad = tokenizer.pad_token_id
    return TokenTable(ids, int(pad if pad is not None else 0))


def text_table(
    tokenizer: Any, texts: list[str], cfg: Any, side: str, *, cached: bool = True
) -> TokenTable:
    """The token table of item (``side='item'``) or user texts as ``model`` (a
    :class:`~moo_search.recommender.config.ModelConfig`) says: its prefix before each text,
    its maximum length, an EOS token appended for ``eos`` pooling."""
    from moo_search.recommender.model.encoder import pooling_of

    prefix = cfg.item_prefix if side == "item" else cfg.user_prefix
    max_length = cfg.max_item_length if side == "item" else cfg.max_user_length
    if prefix:
        texts = [prefix + t for t in texts]
    append = eos_id(tokenizer) if pooling_of(cfg) == "eos" else None
    make = tokenize_cached if cached else tokenize
    return make(tokenizer, texts, max_length, append=append)


def eos_id(tokenizer: Any) -> int:
    """The token ``eos`` pooling ends a text with: the EOS token, else BERT's [SEP]."""
    for name in ("eos_token_id", "sep_token_id"):
        tid = getattr(tokenizer, name, None)
        if tid is not None:
            return int(tid)
    from moo_search.errors import SpecError

    raise SpecError(
        "eos pooling needs a tokenizer with an EOS (or SEP) token; this one has neither",
        field="model.pooling",
    )
