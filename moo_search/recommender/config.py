"""The trial config: what one fine-tune is (data, model, adapter, fusion, loss, train,
re-ranking, evaluation). Names of registered things are checked against their registries."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from moo_search.recommender.registries import ADAPTERS, BACKBONES, DATASETS
from moo_search.spec._errors import Located, Strict

__all__ = [
    "TRIAL_SECTIONS",
    "AdapterConfig",
    "DataConfig",
    "EvalConfig",
    "FusionConfig",
    "LossConfig",
    "LossWeights",
    "ModelConfig",
    "RerankConfig",
    "SplitConfig",
    "SyntheticConfig",
    "TinyModelConfig",
    "TrainConfig",
]

ItemText = Literal["title", "genres", "overview", "tagline", "keywords", "author", "publisher"]

TRIAL_SECTIONS = ("seed", "data", "model", "adapter", "fusion", "loss", "train", "rerank", "eval")
"""The top-level spec keys that make up a trial config (search dimensions point into these)."""


class SplitConfig(Strict):
    method: Literal["chronological", "random", "leave_last"] = Field(
        "chronological", description="Per-user chronological, random ratio, or leave-last-n-out."
    )
    ratios: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train/val/test shares."
    )
    n: int = Field(
        1, ge=1, description="Items per user held out for val and for test (leave_last)."
    )
    seed: int = 0
    cold_items: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of the items held out with all their interactions (the item-cold "
            "protocol): half are validation's new items, half test's; 0 = none."
        ),
    )
    cold_seed: int = Field(0, description="Seed of the held-out item draw.")

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"must be three non-negative shares summing to 1, got {list(v)}")
        return v


class SyntheticConfig(Strict):
    n_users: int = Field(300, ge=2)
    n_items: int = Field(200, ge=2)
    n_genres: int = Field(8, ge=1)
    interactions_per_user: int = Field(30, ge=3)
    popularity_exponent: float = Field(1.0, ge=0.0, description="Zipf exponent of item popularity.")
    genre_affinity: float = Field(
        4.0, ge=0.0, description="How strongly users prefer their genres."
    )
    seed: int = 0


class BookCrossingConfig(Strict):
    k_core: int = Field(
        10,
        ge=1,
        description="Keep users and items with at least this many interactions (repeated "
        "until stable).",
    )
    collapse_editions: bool = Field(
        True,
        description="One item per work: ISBNs with the same normalised title and author.",
    )


class DataConfig(Strict):
    dataset: str = Field(
        "movielens-100k",
        description="A registered dataset (moo_search.recommender.registries.DATASETS).",
    )
    path: str | None = Field(None, description="Directory (recbole) or interactions file (csv).")
    items_path: str | None = None
    users_path: str | None = None
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Column renames for csv: {user: ..., item: ..., rating: ..., timestamp: ...}.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    relevance_threshold: float = Field(4.0, description="rating >= threshold counts as relevant.")
    history_len: int = Field(10, ge=0, description="Recent items rendered into the user's text.")
    item_text: list[ItemText] = Field(
        default_factory=lambda: ["title", "genres"],  # type: ignore[arg-type,list-item]
        description="What an item's text holds, in order; overview/tagline/keywords come from "
        "the movie-overviews table (matched by title and year; unmatched items keep the rest).",
    )
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    book_crossing: BookCrossingConfig = Field(default_factory=BookCrossingConfig)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        return DATASETS.check(v)

    @field_validator("item_text")
    @classmethod
    def _item_text(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must name each text field at most once, and at least one; got {v}")
        return v

    @model_validator(mode="after")
    def _path_required(self) -> DataConfig:
        if DATASETS.get(self.dataset).needs_path and not self.path:
            raise Located(
                ("path",), f"dataset {self.dataset!r} needs data.path (a file or directory)"
            )
        return self


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
            "Attention kernel: 'auto' = eager where no CUDA device is visible (on a CPU, "
            "without dropout, it trains faster than SDPA: benchmarks/bench_cpu_kernels.py), "
            "sdpa with CUDA (or the model's own where it has no SDPA)."
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

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return ADAPTERS.check(v)

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
        from pydantic import ValidationError

        model = getattr(BACKBONES.get(self.cf), "params", None)
        if model is None:
            if self.cf_params:
                raise Located(
                    ("cf_params",),
                    f"backbone {self.cf!r} has no knobs of its own, got {sorted(self.cf_params)}",
                )
            return self
        try:
            model.model_validate(self.cf_params)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"])
            raise Located(
                ("cf_params", *first["loc"]),
                f"{first['msg']} (backbone {self.cf!r}: {where}, got {first.get('input')!r})",
            ) from None
        return self

    id_dim: int = Field(64, ge=1, description="ID embedding size (cf: mf).")

    def serving(self) -> tuple[float, float]:
        """(alpha, tail_weight) when scoring: the serve_ values where set, else the trained."""
        alpha = self.alpha if self.serve_alpha is None else self.serve_alpha
        weight = self.tail_weight if self.serve_tail_weight is None else self.serve_tail_weight
        return alpha, weight


class LossWeights(Strict):
    ranking: float = Field(1.0, ge=0.0)
    ctr: float = Field(0.2, ge=0.0)
    click: float = Field(
        0.0,
        ge=0.0,
        description="The click task: the click head's log loss on each batch's interactions "
        "against sampled non-interacted items (moo_search.recommender.model.tasks).",
    )
    satisfaction: float = Field(
        0.0,
        ge=0.0,
        description="The satisfaction task: the satisfaction head's squared error on the "
        "batch's ratings.",
    )
    diversity: float = Field(0.0, ge=0.0)
    novelty: float = Field(0.0, ge=0.0)
    content: float = Field(
        0.0,
        ge=0.0,
        description=(
            "Aligns item text embeddings with the backbone's item neighbours (in-batch "
            "InfoNCE), so items without interactions are placed by their text."
        ),
    )


class LossConfig(Strict):
    weights: LossWeights = Field(default_factory=LossWeights)
    ranking: Literal["softmax", "bpr"] = "softmax"
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

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> LossConfig:
        w = self.weights
        if sum(w.model_dump().values()) <= 0:
            raise Located(("weights",), "at least one loss weight must be > 0, got all zero")
        return self


class TrainConfig(Strict):
    lr: float = Field(1e-3, description="Adapter learning rate (> 0).")
    id_lr: float = Field(1e-2, gt=0, description="Learning rate of ID embeddings and heads.")
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(32, ge=2)
    id_batch_size: int = Field(1024, ge=1, description="Extra ID-only pairs per step (cheap).")
    max_steps: int = Field(200, ge=1)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    grad_clip: float = Field(1.0, gt=0.0)
    eval_every: int = Field(100, ge=1, description="Validate every N steps (early stopping).")
    patience: int = Field(2, ge=1)
    early_stop_metric: str = Field("ndcg@10", description="A list metric (checked by the spec).")
    refresh_every: int = Field(
        50, ge=1, description="Refresh cached item embeddings every N steps."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
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
    progress: bool = True

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
    candidates: int = Field(100, ge=1)


class EvalConfig(Strict):
    k: int = Field(10, ge=1)
    cold_user_max: int = Field(10, ge=0, description="Users with <= N train items are 'cold'.")
    head_share: float = Field(0.8, gt=0.0, le=1.0, description="Head items = top share of train.")
    batch_size: int = Field(256, ge=1)
    click_negatives: int = Field(
        4,
        ge=1,
        le=100,
        description="Non-interacted items drawn per interaction for the click task (seeded "
        "by the spec's seed; the same pairs for every trial and baseline of a study).",
    )
