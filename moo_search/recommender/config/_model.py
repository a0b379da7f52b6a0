"""The model sections: encoder, adapter, fusion with the collaborative backbone."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moo_search.recommender.config._knobs import check_own_params
from moo_search.recommender.registries import ADAPTERS, BACKBONES
from moo_search.spec._errors import Located, Strict


class TinyModelConfig(Strict):
    hidden_size: int = Field(32, ge=4)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(64, ge=4)
    seed: int = 0


class ModelConfig(Strict):
    name_or_path: str = Field(
        "minilm",
        description="Hugging Face model id or local path; 'minilm' = the packaged all-MiniLM-L6-v2.",
    )
    tiny: TinyModelConfig | None = Field(
        None, description="Build a tiny randomly initialised BERT instead (tests)."
    )
    max_item_length: int = Field(32, ge=4)
    max_user_length: int = Field(96, ge=4)
    pooling: Literal["mean", "cls"] = "mean"
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


class AdapterConfig(Strict):
    type: str = Field("lora", description="lora, dora, ia3 or none.")
    r: int = Field(8, description="LoRA/DoRA rank (>= 1).")
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"])
    feedforward_modules: list[str] = Field(
        default_factory=lambda: ["output.dense"], description="IA3 feed-forward modules."
    )
    layers: list[int] | None = Field(None, description="Layer indices to adapt (None = all).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The adapter type's own knobs, checked against its params model (a "
        "registered builder's ``params`` attribute; search them as adapter.params.<knob>).",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return ADAPTERS.check(v)

    @model_validator(mode="after")
    def _own_params(self) -> AdapterConfig:
        check_own_params(ADAPTERS.get(self.type), self.params, "params", f"adapter {self.type!r}")
        return self

    @model_validator(mode="after")
    def _rank_positive(self) -> AdapterConfig:
        if self.type in ("lora", "dora") and self.r < 1:
            raise Located(("r",), f"rank must be >= 1 for {self.type}, got {self.r}")
        return self


class FusionConfig(Strict):
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="f = alpha*z(semantic) + (1-alpha)*z(collaborative)."
    )
    cf: str = Field(
        "ease",
        description=(
            "Collaborative backbone: ease, itemknn, sansa (closed form, cached; sansa is "
            "EASE kept sparse, for large catalogs) or mf (learned)."
        ),
    )
    ease_lambda: float | None = Field(
        None, gt=0, description="EASE L2 weight (default: tuned on validation)."
    )
    knn_neighbours: int = Field(100, ge=1, description="ItemKNN neighbours per item.")
    sansa_l2: float | None = Field(
        None, gt=0, description="SANSA L2 weight (default: tuned on validation)."
    )
    sansa_density: float | None = Field(
        None,
        gt=0,
        le=1,
        description="SANSA weight density per factor (default: 100 weights per item).",
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

    new_items: Literal["history", "user"] = Field(
        "history",
        description=(
            "How an item without interactions (item-cold protocol) is scored from text: "
            "'history' = its embedding's similarity to the mean embedding of the user's train "
            "items; 'user' = the similarity to the user text's embedding."
        ),
    )

    new_item_neighbours: int | None = Field(
        None,
        ge=1,
        description=(
            "With new_items: history, how many nearest warm items (by text) score a new item "
            "from the user's history; None = chosen on validation (cold_item/ndcg@eval.k) over "
            "the grid the content baselines are tuned on."
        ),
    )

    cf_params: dict[str, Any] = Field(
        default_factory=dict,
        description="The chosen backbone's own knobs, checked against its params model (a "
        "registered backbone's; search them as fusion.cf_params.<knob>).",
    )

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

    id_dim: int = Field(64, ge=1, description="ID embedding size (cf: mf).")

    def serving(self) -> tuple[float, float]:
        """(alpha, tail_weight) when scoring: the serve_ values where set, else the trained."""
        alpha = self.alpha if self.serve_alpha is None else self.serve_alpha
        weight = self.tail_weight if self.serve_tail_weight is None else self.serve_tail_weight
        return alpha, weight
