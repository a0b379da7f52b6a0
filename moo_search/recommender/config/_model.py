"""The model sections: encoder, adapter, fusion with the collaborative backbone."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moo_search.recommender.config._compat import move_old_fusion_keys
from moo_search.recommender.config._knobs import check_own_params
from moo_search.recommender.registries import BACKBONES, FAMILIES
from moo_search.spec._errors import Strict


class TinyModelConfig(Strict):
    family: str = Field(
        "bert",
        description="The model family to build a tiny random model of (`moo-search list "
        "families`); its tokenizer is the packaged MiniLM's.",
    )
    hidden_size: int = Field(32, ge=4, description="Width of the random tiny model.")
    num_hidden_layers: int = Field(2, ge=1, description="Its layers.")
    num_attention_heads: int = Field(2, ge=1, description="Its attention heads.")
    intermediate_size: int = Field(64, ge=4, description="Its feed-forward width.")
    seed: int = Field(0, description="Seed of its random weights.")

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        return FAMILIES.check(v)


class QuantizationConfig(Strict):
    """QLoRA: the frozen base loaded in 4 or 8 bits by bitsandbytes (CUDA only)."""

    bits: Literal[4, 8] = Field(4, description="4 (QLoRA's NF4) or 8 (LLM.int8()).")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    double_quant: bool = Field(True, description="Quantise the 4-bit quantisation constants too.")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16", description="The dtype 4-bit layers compute in."
    )


class ModelConfig(Strict):
    name_or_path: str = Field(
        "minilm",
        description="Hugging Face model id or local path; 'minilm' = the packaged all-MiniLM-L6-v2. "
        "Its family (`moo-search list families`) is found from config.json's model_type.",
    )
    tiny: TinyModelConfig | None = Field(
        None, description="Build a tiny randomly initialised model of a family instead (tests)."
    )
    max_item_length: int = Field(32, ge=4, description="Tokens kept of an item's text.")
    max_user_length: int = Field(96, ge=4, description="Tokens kept of a user's text.")
    pooling: Literal["mean", "cls", "last", "eos", "weighted_mean"] | None = Field(
        None,
        description="How token states become one embedding: mean, cls (first token), last (the "
        "last real token, on left or right padding), eos (an EOS token appended, then last), "
        "weighted_mean (position-weighted, SGPT); None = the family's (mean for encoders, "
        "last for decoders).",
    )
    user_prefix: str = Field(
        "",
        description="Text put before every user text (an instruction, e.g. E5's 'query: ' or "
        "an embedder's task instruction).",
    )
    item_prefix: str = Field(
        "", description="Text put before every item text (e.g. E5's 'passage: ')."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="The frozen base's weight dtype: 'auto' = bfloat16 on a CUDA device that "
        "supports it, float32 otherwise (the CPU default). Adapters and heads train in float32.",
    )
    quantization: QuantizationConfig | None = Field(
        None,
        description="QLoRA: load the frozen base in 4 or 8 bits with bitsandbytes (CUDA only; "
        "refused on a CPU before any weight loads).",
    )
    trust_remote_code: bool = Field(
        False,
        description="Let transformers run the checkpoint's own modelling code (recorded in the "
        "manifest of an export).",
    )
    attention: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description=(
            "Attention kernel: 'auto' = eager where no CUDA device is visible, sdpa with CUDA "
            "(or the model's own where it has no SDPA)."
        ),
    )
    dropout: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description=(
            "The encoder's own dropout (hidden and attention) while fine-tuning; None keeps "
            "the checkpoint's (0.1 for MiniLM). 0 skips dropout's random masks, which on a "
            "CPU cost a large share of each step."
        ),
    )


class FusionConfig(Strict):
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="f = alpha*z(semantic) + (1-alpha)*z(collaborative)."
    )
    cf: str = Field(
        "ease",
        description=(
            "Collaborative backbone: ease, itemknn, sansa (closed form, cached; sansa is "
            "EASE kept sparse, for large catalogs), mf (learned) or a plugin's; its own knobs "
            "are cf_params."
        ),
    )
    tail_weight: float = Field(
        1.0,
        ge=1.0,
        le=100.0,
        description=(
            "Multiplies alpha for tail items (outside the popular head that holds 80% of train "
            "interactions), capped at 1: the text tower weighs more where the backbone has "
            "little data. 1 = one alpha for every item; alpha = 0 stays the backbone exactly."
        ),
    )

    serve_alpha: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "alpha when scoring, if not the one trained with: the tower is trained against "
            "the fused score at fusion.alpha and may be served at another (default: the same)."
        ),
    )
    serve_tail_weight: float | None = Field(
        None,
        ge=1.0,
        le=100.0,
        description="tail_weight when scoring, if not the one trained with (default: the same).",
    )
    sweep: bool = Field(
        False,
        description="Also record every fine-tune with a text tower served at a grid of the "
        "searched fusion weights (fusion.alpha, fusion.tail_weight: as fusion.serve_alpha, "
        "fusion.serve_tail_weight; no retraining) as inference-only variants linked to it "
        "(was driver.sweep_fusion).",
    )

    new_items: Literal["history", "user", "map", "blend", "auto"] = Field(
        "history",
        description=(
            "How an item without interactions (item-cold protocol) is scored from text: "
            "'history' = its text similarity to the user's train items, over its "
            "new_item_neighbours nearest warm items; 'user' = its similarity to the user "
            "text's embedding; 'map' = the user's backbone scores of the warm items carried to "
            "it through a ridge map from item text onto the backbone (fitted on warm items "
            "only); 'blend' = new_item_blend * map + (1 - new_item_blend) * history, both "
            "z-scored; 'auto' = the mode chosen on validation (cold_item/ndcg@eval.k, the "
            "simplest within one standard error of the best)."
        ),
    )

    new_item_neighbours: int | None = Field(
        None,
        ge=1,
        description=(
            "With new_items: history or blend, how many nearest warm items (by text) score a "
            "new item from the user's history; None = chosen on validation (cold_item/"
            "ndcg@eval.k) over the grid the content baselines are tuned on."
        ),
    )

    new_item_ridge: float | None = Field(
        None,
        gt=0,
        description=(
            "With new_items: map or blend, the ridge of the text-to-backbone map, relative to "
            "the mean squared norm of the warm item embeddings; None = chosen on validation "
            "over 10, 1, 0.1, 0.01, 0.001."
        ),
    )

    new_item_blend: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "With new_items: blend, the weight of the map's z-score (the history's gets the "
            "rest); None = chosen on validation over 0.25, 0.5, 0.75."
        ),
    )

    cf_params: dict[str, Any] = Field(
        default_factory=dict,
        description="The chosen backbone's own knobs, checked against its params model "
        "(ease: lambda; itemknn: neighbours; sansa: l2, density; mf: dim; `moo-search list "
        "backbones`); search them as fusion.cf_params.<knob>. Empty: its defaults.",
    )

    legacy_id_dim: int | None = Field(
        None,
        ge=1,
        description="Set by the compatibility module only, for a config written with "
        "fusion.id_dim and a backbone other than mf: the size of the ID embeddings every "
        "backbone then drew, drawn still (and discarded) so its trials re-run to the numbers "
        "they recorded. Leave unset.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data: Any) -> Any:
        return move_old_fusion_keys(data)

    @field_validator("cf")
    @classmethod
    def _known_backbone(cls, v: str) -> str:
        return BACKBONES.check(v)

    @model_validator(mode="after")
    def _backbone_params(self) -> FusionConfig:
        check_own_params(
            BACKBONES.get(self.cf), self.cf_params, "cf_params", f"backbone {self.cf!r}"
        )
        return self

    def serving(self) -> tuple[float, float]:
        """(alpha, tail_weight) when scoring: the serve_ values where set, else the trained."""
        alpha = self.alpha if self.serve_alpha is None else self.serve_alpha
        weight = self.tail_weight if self.serve_tail_weight is None else self.serve_tail_weight
        return alpha, weight
