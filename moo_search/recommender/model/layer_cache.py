"""Frozen lower layers computed once: when an adapter leaves the embeddings and the first
``n`` transformer layers untouched, their output for a text is the same in every trial of a
study. :class:`FrozenPrefix` runs that part once per table of texts (cached in memory and on
disk, keyed by the base weights, the token ids, ``n``, the dtype and the attention kernel)
and the rest of the encoder from there.

The prefix always runs in eval mode (no dropout), cached or not, so a cached trial computes
exactly what an uncached one does. Each model family says how its layers run apart (its
:class:`~moo_search.recommender.model.family.LayerStack`: BERT-like encoders, Llama-like
decoders, GPT-2) or why the cache steps aside for it (ModernBERT, T5: the whole encoder runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_search.recommender.cache import read_entry, write_entry
from moo_search.recommender.memory import available_bytes
from moo_search.recommender.model.encoder import unwrapped
from moo_search.recommender.model.family import LayerStack
from moo_search.recommender.model.tokens import TokenTable

__all__ = ["FrozenPrefix", "frozen_prefix_length"]

logger = logging.getLogger("moo_search")

MEMORY_SHARE = 0.25  # at most this share of the available memory for one study's cache
_MEMORY: OrderedDict[str, torch.Tensor] = OrderedDict()
_MEMORY_ITEMS = 4


_ADAPTER_MARKERS = ("lora_", "ia3_")


def _adapted(module: torch.nn.Module) -> bool:
    """Trainable, or holding adapter weights (a loaded adapter is frozen but not the base)."""
    return any(
        p.requires_grad or any(m in n for m in _ADAPTER_MARKERS)
        for n, p in module.named_parameters()
    )


def layer_stack(encoder: Any) -> LayerStack | None:
    """The family's layer stack of ``encoder``, or None where the cache steps aside for it
    (the reason is logged once per model type)."""
    from moo_search.recommender.model.encoder import family_of_model, model_type_of

    family, model_type = family_of_model(encoder), model_type_of(encoder)
    why = family.cache_support(model_type)
    if why:
        if model_type not in _TOLD:
            _TOLD.add(model_type)
            logger.info("frozen-layer cache off for %s: %s", model_type, why)
        return None
    assert family.stack is not None
    return family.stack(unwrapped(encoder))


_TOLD: set[str] = set()


def frozen_prefix_length(encoder: Any) -> int:
    """How many lower transformer layers hold neither an adapter nor a trainable parameter
    (0 when the family has no layer stack, the encoder is quantized, or its first layer or
    its embeddings are adapted)."""
    if getattr(unwrapped(encoder), "is_quantized", False):
        return 0  # (QLoRA: 4/8-bit layers are not cached)
    stack = layer_stack(encoder)
    if stack is None or any(_adapted(m) for m in stack.embedding_modules()):
        return 0
    layers = stack.layers()
    n = 0
    for layer in layers:
        if _adapted(layer):
            break
        n += 1
    return n if n < len(layers) else 0


def _cache_dir() -> Path:
    from moo_search.recommender.data.movielens import cache_dir

    return cache_dir() / "hidden"


class FrozenPrefix:
    """The frozen bottom of an encoder: embeddings and layers ``0 .. n-1``.

    Args:
        encoder: The (PEFT-wrapped) encoder.
        n: Frozen lower layers (:func:`frozen_prefix_length`).
        weights_sha256: Fingerprint of the base weights (part of the cache key).
        cache: Keep each table's prefix output (memory + disk); False recomputes it.
    """

    def __init__(self, encoder: Any, n: int, *, weights_sha256: str, cache: bool) -> None:
        self.base = unwrapped(encoder)
        stack = layer_stack(encoder)
        assert stack is not None, "a frozen prefix needs the family's layer stack"
        self.stack = stack
        self.n = n
        self.weights_sha256 = weights_sha256
        self.cache = cache
        self._states: dict[int, torch.Tensor] = {}  # id(table) -> (N, L, H)

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [*self.stack.embedding_modules(), *self.stack.layers()[: self.n]]

    def eval_(self) -> None:
        """Keep the prefix in eval mode (no dropout), whatever mode the model is in."""
        for m in self.modules:
            m.eval()

    # ---- running layers

    def bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        layers = self.stack.layers()[: self.n]
        return self.stack.run(layers, self.stack.embed(ids, mask), mask)

    def top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last hidden state from the prefix's output."""
        return self.stack.finish(self.stack.run(self.stack.layers()[self.n :], hidden, mask))

    # ---- the cache

    def _key(self, table: TokenTable, mode: str) -> str:
        h = hashlib.sha256()
        h.update(f"{self.weights_sha256}|{self.n}|{mode}|".encode())
        h.update(np.ascontiguousarray(table.dense).tobytes())
        h.update(np.ascontiguousarray(table.lengths).tobytes())
        return h.hexdigest()[:32]

    def attach(
        self,
        table: TokenTable,
        device: torch.device,
        autocast: Callable[[], Any] | None = None,
        batch_size: int = 256,
    ) -> bool:
        """Compute (or load) the prefix output of every text of ``table``; False when the
        cache is off or would not fit in memory (the table is then encoded in full)."""
        if not self.cache:
            return False
        hidden = int(self.base.config.hidden_size)
        mode = "autocast" if autocast is not None else "fp32"
        need = len(table) * table.dense.shape[1] * hidden * 4
        budget = int(available_bytes() * MEMORY_SHARE)
        if need > budget:
            logger.info(
                "frozen-layer cache of %d texts needs %.0f MB (> %.0f MB available to it): "
                "encoding in full",
                len(table),
                need / 2**20,
                budget / 2**20,
            )
            return False
        kernel = getattr(self.base.config, "_attn_implementation", None)  # (model.attention)
        key = self._key(table, f"{mode}|{device.type}|{kernel}")
        states = _MEMORY.get(key)
        if states is None:
            states = self._load(key, (len(table), table.dense.shape[1], hidden))
        if states is None:
            states = self._compute(table, device, autocast, batch_size)
            self._save(key, states)
        _MEMORY[key] = states
        _MEMORY.move_to_end(key)
        while len(_MEMORY) > _MEMORY_ITEMS:
            _MEMORY.popitem(last=False)
        self._states[id(table)] = states.to(device)
        return True

    @torch.no_grad()
    def _compute(
        self, table: TokenTable, device: torch.device, autocast: Any, batch_size: int
    ) -> torch.Tensor:
        width = table.dense.shape[1]
        out: torch.Tensor | None = None
        for idx in table.length_buckets(batch_size):
            ids, mask = table.batch(idx)
            with autocast() if autocast else contextlib.nullcontext():
                h = self.bottom(ids.to(device), mask.to(device))
            if out is None:
                out = torch.zeros(len(table), width, h.shape[-1], dtype=h.dtype)
            out[torch.from_numpy(idx), : h.shape[1]] = h.cpu()
        assert out is not None
        return out

    def _load(self, key: str, shape: tuple[int, int, int]) -> torch.Tensor | None:
        """The cached prefix output under ``key`` when it is a verified entry of ``shape``
        (:mod:`moo_search.recommender.cache`: anything else is removed with a warning and recomputed)."""

        def check(t: Any) -> str | None:
            if not isinstance(t, torch.Tensor):
                return f"holds a {type(t).__name__}, not a tensor"
            return None if tuple(t.shape) == shape else f"holds shape {tuple(t.shape)}, not {shape}"

        return read_entry(
            _cache_dir() / f"{key}.pt",
            lambda p: torch.load(p, weights_only=True),
            what="frozen-layer cache",
            check=check,
        )

    def _save(self, key: str, states: torch.Tensor) -> None:
        write_entry(
            _cache_dir() / f"{key}.pt",
            lambda f: torch.save(states, f),
            what="frozen-layer cache",
            shape=list(states.shape),
            dtype=str(states.dtype),
        )

    def states(self, table: TokenTable) -> torch.Tensor | None:
        return self._states.get(id(table))
