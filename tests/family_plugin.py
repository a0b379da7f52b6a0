"""A user's model family, registered the way docs/explanations/architecture.md says (imported by
tests/recommender/test_families.py, so the family contract suite runs it, and named in a spec's `plugins`
by the CLI test): a Qwen2-shaped decoder of its own name with position-weighted pooling."""

from __future__ import annotations

from typing import Any

from moo_search.recommender.model.families import DecoderStack
from moo_search.recommender.model.family import ModelFamily
from moo_search.recommender.registries import FAMILIES


def tiny_qwen2(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        num_key_value_heads=1,  # grouped-query attention, as Qwen2 ships
        intermediate_size=t.intermediate_size,
        max_position_embeddings=positions,
        **special,
    )


if "house-decoder" not in FAMILIES:
    FAMILIES.register(
        "house-decoder",
        ModelFamily(
            name="house-decoder",
            model_types=("house-decoder",),
            description="a user's Qwen2-shaped decoder, position-weighted pooling",
            pooling="weighted_mean",
            causal=True,
            target_sets={
                "default": {"": ("q_proj", "v_proj")},
                "attention": {"": ("q_proj", "k_proj", "v_proj", "o_proj")},
                "mlp": {"": ("gate_proj", "up_proj", "down_proj")},
            },
            ia3_feedforward={"": ("down_proj",)},
            layer_pattern=r"(?:^|\.)layers\.(\d+)\.",
            stack=DecoderStack,
            tiny=tiny_qwen2,
        ),
    )
