"""The training and evaluation sections: loss, training loop, re-ranking, evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from moo_search.spec._errors import Located, Strict

OLD_TERM_NAMES = {"ctr": "conversion"}
"""Loss terms' old names: a spec, a stored trial config or a study's stored parameter
(``loss.weights.ctr``) that uses one sets the term's weight under its name now."""


def _old_term_names(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with old term names mapped; an old name wins over the new one beside it (it
    comes from an older spec or a study's stored parameter, set over a fuller dump)."""
    if not any(k in data for k in OLD_TERM_NAMES):
        return data
    out = {k: v for k, v in data.items() if k not in OLD_TERM_NAMES}
    for old, new in OLD_TERM_NAMES.items():
        if old in data:
            out[new] = data[old]
    return out


class LossWeights(Strict):
    """One weight per registered loss term (``LOSS_TERMS``), normalised to sum to 1: each
    term's own ``default_weight`` where the spec sets none. The built-in terms and a plugin's
    are keyed alike, ``loss.weights.<term>``; the spec reference lists them."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _every_term(cls, data: Any) -> Any:
        """Every registered term's weight, in registry order (what a spec leaves out takes the
        term's default); a key no term registers is kept, for the check below to name."""
        if not isinstance(data, dict):
            return data
        from moo_search.recommender.registries import LOSS_TERMS

        data = _old_term_names(data)
        terms = dict(LOSS_TERMS.items())
        given = {n: data.get(n, t.default_weight) for n, t in terms.items()}
        return {**given, **{k: v for k, v in data.items() if k not in terms}}

    @model_validator(mode="after")
    def _registered_terms(self) -> LossWeights:
        from moo_search.recommender.registries import LOSS_TERMS

        for name, value in (self.model_extra or {}).items():
            if name not in LOSS_TERMS:
                raise Located((name,), LOSS_TERMS.unknown_message(name))
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise Located((name,), f"a loss weight is a number >= 0, got {value!r}")
            (self.model_extra or {})[name] = float(value)
        return self

    def of(self, term: str) -> float:
        """The weight of ``term`` (its old name too; 0 for a term no longer registered)."""
        term = OLD_TERM_NAMES.get(term, term)
        return float((self.model_extra or {}).get(term, 0.0))

    @classmethod
    def registered_fields(cls) -> list[tuple[str, str, str, str]]:
        """``(name, type, default, help)`` of every registered term, for the spec reference
        (the weights are the registry's, not fields of this model)."""
        from moo_search.recommender.registries import LOSS_TERMS

        return [
            (name, "float", repr(t.default_weight), t.description) for name, t in LOSS_TERMS.items()
        ]


class LossConfig(Strict):
    weights: LossWeights = Field(default_factory=LossWeights)
    ranking: Literal["softmax", "bpr"] = Field(
        "softmax", description="The ranking term: full softmax over the catalog, or BPR."
    )
    temperature: float = Field(
        0.25,
        gt=0.0,
        description="Start value of the (learned) softmax temperature over fused z-scores.",
    )
    content_temperature: float = Field(
        0.05, gt=0.0, description="Temperature of the content term's in-batch softmax."
    )
    content_neighbours: int = Field(
        10, ge=1, description="Backbone neighbours per item the content term draws from."
    )
    content_positives: int = Field(
        1,
        ge=1,
        description="Positives per item in the content term, drawn without replacement from "
        "its content_neighbours (a multi-positive InfoNCE: each positive against the batch, "
        "the item's other positives left out of its denominator).",
    )
    content_hard_negatives: int = Field(
        0,
        ge=0,
        description="Hard negatives per item in the content term: items the frozen text tower "
        "places nearest it that the backbone does not (outside its 5 x content_neighbours "
        "nearest), so the tower learns where text alone misleads; 0 = in-batch negatives only.",
    )

    task_towers: bool = Field(
        True,
        description="The business-task heads' trained part (TaskTowers: a mixture of experts "
        "over the text tower's user and item embeddings and the count features, trained by "
        "the click, ctr and satisfaction terms with the towers); false: linear heads only, as "
        "a config written before it.",
    )
    task_item_dropout: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Share of the business-task terms' pairs whose item-side counts (like-rate, "
        "popularity, rating offset) are set to what a new item has, so the task heads learn to "
        "read an item from its text (DropoutNet); 0 = never.",
    )

    @model_validator(mode="after")
    def _positives_within_neighbours(self) -> LossConfig:
        if self.content_positives > self.content_neighbours:
            raise Located(
                ("content_positives",),
                f"at most loss.content_neighbours ({self.content_neighbours}) positives per "
                f"item, got {self.content_positives}",
            )
        return self

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> LossConfig:
        w = self.weights
        if sum(w.model_dump().values()) <= 0:
            raise Located(("weights",), "at least one loss weight must be > 0, got all zero")
        return self


class TrainConfig(Strict):
    lr: float = Field(1e-3, description="Adapter learning rate (> 0).")
    task_warmup_steps: int = Field(
        200,
        ge=0,
        description="Steps of 1024 train pairs that fit the task heads over the tower's "
        "embeddings, held fixed, before the task terms join the fine-tune (none when no task "
        "has a weight); 0 = the task terms' own batches only.",
    )
    id_lr: float = Field(1e-2, gt=0, description="Learning rate of ID embeddings and heads.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    batch_size: int = Field(32, ge=2, description="Users per training step.")
    id_batch_size: int = Field(1024, ge=1, description="Extra ID-only pairs per step (cheap).")
    max_steps: int = Field(200, ge=1, description="Training steps (the trial's budget).")
    content_steps: int = Field(
        0,
        ge=0,
        description="A content phase: the first N of the max_steps train the content term "
        "alone (the text tower learns which items users take together, before the joint "
        "phase); 0 = none. Needs a text tower (fusion.alpha > 0).",
    )
    warmup_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of the steps with a linear learning-rate warm-up."
    )
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient norm clip.")
    eval_every: int = Field(100, ge=1, description="Validate every N steps (early stopping).")
    patience: int = Field(
        2, ge=1, description="Validations without improvement before training stops early."
    )
    early_stop_metric: str = Field("ndcg@10", description="A list metric (checked by the spec).")
    refresh_every: int = Field(
        50, ge=1, description="Refresh cached item embeddings every N steps."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where to train: auto takes a GPU when there is one."
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute the adapted layers' activations in the backward pass instead of "
        "keeping them (less memory for long texts and large models, about a third more time).",
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto",
        description="Mixed precision: auto = bf16 on CUDA and on CPUs with fast bf16 "
        "(AMX / AVX-512 BF16), else fp32 (fp16 + scaler on older GPUs); off = fp32.",
    )
    layer_cache: bool = Field(
        True,
        description="When the adapter leaves lower layers frozen, compute their output once "
        "per study (cached under $MOO_SEARCH_CACHE/hidden) and run only the adapted layers.",
    )
    progress: bool = Field(True, description="Show a progress bar while training.")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML reads a bare `off` as false

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"learning rate must be > 0, got {v}")
        return v


class RerankConfig(Strict):
    mmr_lambda: float = Field(1.0, ge=0.0, le=1.0, description="1 = pure relevance.")
    pop_penalty: float = Field(0.0, ge=0.0, description="beta: subtract beta*normalised log-pop.")
    candidates: int = Field(100, ge=1, description="Top items per user the re-rankers choose from.")
    sweep: bool = Field(
        True,
        description="Also record every fine-tune at a grid of the searched re-ranking knobs "
        "(inference-only variants, seconds each) as trials linked to it (was "
        "driver.sweep_rerank).",
    )


class EvalConfig(Strict):
    k: int = Field(10, ge=1, description="List length of the default metrics (@K).")
    cold_user_max: int = Field(10, ge=0, description="Users with <= N train items are 'cold'.")
    head_share: float = Field(0.8, gt=0.0, le=1.0, description="Head items = top share of train.")
    batch_size: int = Field(256, ge=1, description="Users scored at a time in evaluation.")
    click_negatives: int = Field(
        4,
        ge=1,
        le=100,
        description="Non-interacted items drawn per interaction for the click task (seeded "
        "by the spec's seed; the same pairs for every trial and baseline of a study).",
    )
