"""What a model family is: the registered entry (:class:`ModelFamily`) that owns, for the
models of one architecture, how the text tower loads, how it pools, which modules an adapter
targets, how its frozen lower layers run apart (:class:`LayerStack`) and a tiny random
config of itself for tests. The built-in families register in
:mod:`moo_search.recommender.model.families` exactly as a plugin's would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["POOLINGS", "TARGET_SETS", "LayerStack", "LoadOptions", "ModelFamily"]

POOLINGS = ("mean", "cls", "last", "eos", "weighted_mean")
TARGET_SETS = ("default", "attention", "mlp", "all-linear")
"""Named adapter target sets (``adapter.target_modules``): a family's default (PEFT's map:
q and v projections), every attention projection, the feed-forward block, or every linear
layer of the tower (``all-linear``, PEFT's shorthand, resolved to names here)."""


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """How to load a checkpoint: weight dtype (None: the checkpoint's float32), a
    bitsandbytes quantization config (None: none), remote code allowed."""

    dtype: Any = None
    quantization: Any = None
    trust_remote_code: bool = False


class LayerStack:
    """A family's transformer as three parts the frozen-layer cache runs apart: ``embed``
    (token ids to the first hidden states), ``layers`` (each run by ``run``) and ``finish``
    (the final norm, if any). ``embed(ids) -> run(all layers) -> finish`` must equal the
    model's own ``last_hidden_state`` on real tokens (the family contract tests check it)."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def embedding_modules(self) -> list[Any]:
        """The modules ``embed`` runs (an adapter on one of them turns the cache off)."""
        raise NotImplementedError

    def layers(self) -> Sequence[Any]:
        raise NotImplementedError

    def embed(self, ids: Any, mask: Any) -> Any:
        raise NotImplementedError

    def run(self, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
        raise NotImplementedError

    def finish(self, hidden: Any) -> Any:
        return hidden


@dataclass(frozen=True, kw_only=True)
class ModelFamily:
    """A model family: register one with ``FAMILIES.register(name, ModelFamily(...))``.

    Args:
        name: The family's name (``model.tiny.family`` and ``moo-search list``).
        model_types: The ``config.json`` ``model_type`` values it owns.
        description: One line for ``moo-search list`` and the docs.
        model_class: ``transformers`` class name that loads the text tower (``AutoModel``:
            the base model without a head; ``T5EncoderModel``: the encoder alone).
        pooling: Its default pooling (one of :data:`POOLINGS`).
        padding_side: Where its batches pad (``right`` keeps positions as in training;
            ``last`` pooling finds the last real token from the mask on either side).
        causal: Its attention is causal (a decoder): ``mean`` over it is allowed but its
            default is ``last``.
        target_sets: Adapter target sets by name (:data:`TARGET_SETS` but ``all-linear``)
            -> module name suffixes, per ``model_type`` where they differ (key ``""``: all).
        ia3_feedforward: IA3's feed-forward modules (per ``model_type``, key ``""``: all).
        layer_pattern: A regex whose group 1 is the layer index in a module's name.
        stack: ``stack(base) -> LayerStack`` for the frozen-layer cache, or None.
        no_cache_reason: Why the cache steps aside for this family (when ``stack`` is None,
            or for the ``model_type`` values in ``stack_model_types``' complement).
        stack_model_types: The model types ``stack`` supports (empty: all of the family's).
        tiny: ``tiny(TinyModelConfig, vocab_size, max_positions, special_ids) -> config``:
            a tiny random config of the family for tests.
    """

    name: str
    model_types: tuple[str, ...]
    description: str
    model_class: str = "AutoModel"
    pooling: str = "mean"
    padding_side: str = "right"
    causal: bool = False
    target_sets: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    ia3_feedforward: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    layer_pattern: str = r"(?:^|\.)layers?\.(\d+)\."
    stack: Callable[[Any], LayerStack] | None = None
    no_cache_reason: str = ""
    stack_model_types: tuple[str, ...] = ()
    tiny: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"family {self.name!r}: pooling must be one of {POOLINGS}, got {self.pooling!r}"
            )
        if self.padding_side not in ("left", "right"):
            raise ValueError(
                f"family {self.name!r}: padding_side must be 'left' or 'right', got "
                f"{self.padding_side!r}"
            )
        if self.stack is None and not self.no_cache_reason:
            raise ValueError(f"family {self.name!r} has no layer stack: say why in no_cache_reason")
        re.compile(self.layer_pattern)

    def targets(self, model_type: str, name: str = "default") -> tuple[str, ...]:
        """The module suffixes of target set ``name`` for ``model_type``."""
        by_type = self.target_sets.get(name, {})
        out = by_type.get(model_type, by_type.get(""))
        if out is None:
            known = sorted(self.target_sets)
            raise KeyError(f"family {self.name!r} has no target set {name!r} (it has {known})")
        return out

    def feedforward(self, model_type: str) -> tuple[str, ...]:
        return self.ia3_feedforward.get(model_type, self.ia3_feedforward.get("", ()))

    def layer_index(self, module_name: str) -> int | None:
        m = re.search(self.layer_pattern, module_name)
        return int(m.group(1)) if m else None

    def cache_support(self, model_type: str) -> str:
        """'' when the frozen-layer cache runs for ``model_type``, else why it steps aside."""
        if self.stack is None:
            return self.no_cache_reason
        if self.stack_model_types and model_type not in self.stack_model_types:
            return self.no_cache_reason or f"{model_type!r} is not among {self.stack_model_types}"
        return ""
