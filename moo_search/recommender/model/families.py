"""The built-in model families, registered in :data:`moo_search.recommender.registries.FAMILIES`
as a plugin registers its own: BERT-like encoders, ModernBERT, Llama-like decoders, GPT-2 and T5
encoders (:class:`moo_search.recommender.model.family.ModelFamily`).

Default adapter targets follow PEFT's per-architecture map (``bert`` -> query, value; ``qwen2``
-> q_proj, v_proj; ``gpt2`` -> c_attn; ``t5`` -> q, v), IA3's from PEFT's IA3 maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moo_search.recommender.model.family import LayerStack, ModelFamily
from moo_search.recommender.registries import FAMILIES

__all__ = ["BertStack", "DecoderStack", "GPT2Stack"]


# --------------------------------------------------------------------------- layer stacks


class BertStack(LayerStack):
    """``embeddings`` + ``encoder.layer`` with BERT's additive (B, 1, 1, L) mask; MPNet's
    relative position bias (``encoder.compute_position_bias``) is computed per run."""

    def embedding_modules(self) -> list[Any]:
        return [self.base.embeddings]

    def layers(self) -> Sequence[Any]:
        return list(self.base.encoder.layer)

    def embed(self, ids: Any, mask: Any) -> Any:
        return self.base.embeddings(input_ids=ids)

    def run(self, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
        import torch

        dtype = hidden.dtype if hidden.dtype.is_floating_point else torch.float32
        ext = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        kwargs: dict[str, Any] = {}
        bias = getattr(self.base.encoder, "compute_position_bias", None)
        if callable(bias):  # MPNet
            kwargs["position_bias"] = bias(hidden)
        for layer in layers:
            out = layer(hidden, attention_mask=ext, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4.x: a tuple
        return hidden


class DecoderStack(LayerStack):
    """Llama-like decoders (``embed_tokens``, ``layers``, ``rotary_emb``, ``norm``): the
    causal mask and rotary embeddings built as the model builds them."""

    def embedding_modules(self) -> list[Any]:
        return [self.base.embed_tokens]

    def layers(self) -> Sequence[Any]:
        return list(self.base.layers)

    def embed(self, ids: Any, mask: Any) -> Any:
        return self.base.embed_tokens(ids)

    def _masks(self, hidden: Any, mask: Any, positions: Any) -> dict[str, Any]:
        from transformers.masking_utils import (
            create_causal_mask,
            create_sliding_window_causal_mask,
        )

        cfg = self.base.config
        args = {
            "config": cfg,
            "inputs_embeds": hidden,
            "attention_mask": mask,
            "cache": None,
            "position_ids": positions,
        }
        masks = {"full_attention": create_causal_mask(**args)}
        if getattr(cfg, "sliding_window", None) and (
            "sliding_attention" in (getattr(cfg, "layer_types", None) or ())
            or cfg.model_type == "mistral"
        ):
            masks["sliding_attention"] = create_sliding_window_causal_mask(**args)
        return masks

    def run(self, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
        import torch

        positions = torch.arange(hidden.shape[1], device=hidden.device)[None, :]
        masks = self._masks(hidden, mask, positions)
        rotary = self.base.rotary_emb(hidden, position_ids=positions)
        default = "sliding_attention" if self.base.config.model_type == "mistral" else None
        for layer in layers:
            kind = getattr(layer, "attention_type", None) or default or "full_attention"
            out = layer(
                hidden,
                attention_mask=masks.get(kind, masks["full_attention"]),
                position_ids=positions,
                position_embeddings=rotary,
            )
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def finish(self, hidden: Any) -> Any:
        return self.base.norm(hidden)


class GPT2Stack(LayerStack):
    """GPT-2: token and learned position embeddings, ``h`` blocks, ``ln_f``."""

    def embedding_modules(self) -> list[Any]:
        return [self.base.wte, self.base.wpe, self.base.drop]

    def layers(self) -> Sequence[Any]:
        return list(self.base.h)

    def embed(self, ids: Any, mask: Any) -> Any:
        import torch

        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        return self.base.drop(self.base.wte(ids) + self.base.wpe(positions))

    def run(self, layers: Sequence[Any], hidden: Any, mask: Any) -> Any:
        import torch
        from transformers.masking_utils import create_causal_mask

        positions = torch.arange(hidden.shape[1], device=hidden.device)[None, :]
        causal = create_causal_mask(
            config=self.base.config,
            inputs_embeds=hidden,
            attention_mask=mask,
            cache=None,
            position_ids=positions,
        )
        for block in layers:
            out = block(hidden, None, causal, position_ids=positions)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def finish(self, hidden: Any) -> Any:
        return self.base.ln_f(hidden)


# --------------------------------------------------------------------------- tiny configs


def _tiny_bert(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=positions,
    )


def _tiny_modernbert(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import ModernBertConfig

    kinds = [
        "full_attention" if i % 2 == 0 else "sliding_attention" for i in range(t.num_hidden_layers)
    ]
    return ModernBertConfig(
        vocab_size=vocab,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=max(positions, 64),
        layer_types=kinds,
        local_attention=16,
        pad_token_id=special["pad_token_id"],
        bos_token_id=special["bos_token_id"],
        eos_token_id=special["eos_token_id"],
        cls_token_id=special["bos_token_id"],
        sep_token_id=special["eos_token_id"],
    )


def _tiny_llama(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=positions,
        **special,
    )


def _tiny_gpt2(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab,
        n_embd=t.hidden_size,
        n_layer=t.num_hidden_layers,
        n_head=t.num_attention_heads,
        n_inner=t.intermediate_size,
        n_positions=positions,
        bos_token_id=special.get("bos_token_id", 0),
        eos_token_id=special.get("eos_token_id", 0),
    )


def _tiny_t5(t: Any, vocab: int, positions: int, special: dict[str, Any]) -> Any:
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab,
        d_model=t.hidden_size,
        d_kv=max(1, t.hidden_size // t.num_attention_heads),
        d_ff=t.intermediate_size,
        num_layers=t.num_hidden_layers,
        num_heads=t.num_attention_heads,
        pad_token_id=special.get("pad_token_id", 0),
        eos_token_id=special.get("eos_token_id", 1),
        is_encoder_decoder=True,
    )


# --------------------------------------------------------------------------- the families

_QV = {"": ("query", "value"), "mpnet": ("q", "v"), "distilbert": ("q_lin", "v_lin")}
_BERT_ATTENTION = {
    "": ("query", "key", "value", "attention.output.dense"),
    "mpnet": ("q", "k", "v", "o"),
    "distilbert": ("q_lin", "k_lin", "v_lin", "out_lin"),
}
_BERT_MLP = {
    "": ("intermediate.dense", "output.dense"),
    "mpnet": ("intermediate.dense", "output.dense"),
    "distilbert": ("lin1", "lin2"),
}

FAMILIES.register(
    "bert",
    ModelFamily(
        name="bert",
        model_types=(
            "bert",
            "roberta",
            "xlm-roberta",
            "camembert",
            "electra",
            "mpnet",
            "distilbert",
        ),
        description="BERT-like encoders: BERT, MiniLM, MPNet, RoBERTa/XLM-R, E5, BGE, GTE",
        pooling="mean",
        target_sets={
            "default": _QV,
            "attention": _BERT_ATTENTION,
            "mlp": _BERT_MLP,
        },
        # (today's IA3 default: q and v scaled, the output dense as its feed-forward)
        ia3_feedforward={"": ("output.dense",), "distilbert": ("lin2",)},
        layer_pattern=r"(?:^|\.)layers?\.(\d+)\.",
        stack=BertStack,
        stack_model_types=("bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"),
        no_cache_reason="DistilBERT's blocks take another mask and layout",
        tiny=_tiny_bert,
    ),
)

FAMILIES.register(
    "modernbert",
    ModelFamily(
        name="modernbert",
        model_types=("modernbert",),
        description="ModernBERT encoders (rotary, alternating local and global attention)",
        pooling="mean",
        target_sets={
            "default": {"": ("Wqkv",)},
            "attention": {"": ("Wqkv", "attn.Wo")},
            "mlp": {"": ("Wi", "mlp.Wo")},
        },
        ia3_feedforward={"": ("mlp.Wo",)},
        layer_pattern=r"(?:^|\.)layers\.(\d+)\.",
        no_cache_reason=(
            "ModernBERT alternates local (sliding-window) and global attention with their own "
            "rotary tables; its layers are not run apart"
        ),
        tiny=_tiny_modernbert,
    ),
)

_DECODER_TYPES = ("llama", "qwen2", "qwen3", "mistral", "phi3")
FAMILIES.register(
    "llama",
    ModelFamily(
        name="llama",
        model_types=_DECODER_TYPES,
        description="Llama-like decoders: Llama, Qwen2/Qwen3 (and their embedders), Mistral, Phi-3",
        pooling="last",
        causal=True,
        target_sets={
            "default": {"": ("q_proj", "v_proj"), "phi3": ("qkv_proj",)},
            "attention": {
                "": ("q_proj", "k_proj", "v_proj", "o_proj"),
                "phi3": ("qkv_proj", "o_proj"),
            },
            "mlp": {
                "": ("gate_proj", "up_proj", "down_proj"),
                "phi3": ("gate_up_proj", "down_proj"),
            },
        },
        ia3_feedforward={"": ("down_proj",)},
        layer_pattern=r"(?:^|\.)layers\.(\d+)\.",
        stack=DecoderStack,
        stack_model_types=("llama", "qwen2", "qwen3", "mistral"),
        no_cache_reason="Phi-3's layers are run whole (not checked against its own forward)",
        tiny=_tiny_llama,
    ),
)

FAMILIES.register(
    "gpt2",
    ModelFamily(
        name="gpt2",
        model_types=("gpt2",),
        description="GPT-2 decoders (Conv1D projections)",
        pooling="last",
        causal=True,
        target_sets={
            "default": {"": ("c_attn",)},
            "attention": {"": ("c_attn", "attn.c_proj")},
            "mlp": {"": ("c_fc", "mlp.c_proj")},
        },
        ia3_feedforward={"": ("mlp.c_proj",)},
        layer_pattern=r"(?:^|\.)h\.(\d+)\.",
        stack=GPT2Stack,
        tiny=_tiny_gpt2,
    ),
)

FAMILIES.register(
    "t5",
    ModelFamily(
        name="t5",
        model_types=("t5", "mt5", "umt5"),
        description="T5 encoders (the encoder alone: sentence-T5, GTR, Flan-T5's encoder)",
        model_class="T5EncoderModel",
        pooling="mean",
        target_sets={
            "default": {"": ("q", "v")},
            "attention": {"": ("q", "k", "v", "o")},
            "mlp": {"": ("wi", "wi_0", "wi_1", "wo")},
        },
        ia3_feedforward={"": ("wo",)},
        layer_pattern=r"(?:^|\.)block\.(\d+)\.",
        no_cache_reason=(
            "T5's relative position bias is computed by its first block and passed up the "
            "stack; its layers are not run apart"
        ),
        tiny=_tiny_t5,
    ),
)
