"""The typed, validated study spec (YAML) and dotted-path overrides.

A study spec is a trial config (``data``, ``model``, ``adapter``, ``fusion``, ``loss``,
``train``, ``rerank``, ``eval``, ``seed``) plus the study-level sections (``search_space``,
``objectives``, ``constraints``, ``driver``, ``budget``, ``storage``). Search dimensions are
dotted paths into the trial config, so any value can be searched without code changes.

Every validation error names the field by its dotted path, states the rule and the value
found, and suggests the closest valid key for a typo.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moo_search.errors import SpecError

__all__ = [
    "AdapterConfig",
    "BudgetConfig",
    "Constraint",
    "DataConfig",
    "Dimension",
    "DriverConfig",
    "EvalConfig",
    "FusionConfig",
    "LossConfig",
    "ModelConfig",
    "Objective",
    "RerankConfig",
    "SplitConfig",
    "StudySpec",
    "SyntheticConfig",
    "TrainConfig",
    "apply_overrides",
    "is_known_metric",
    "load_spec",
    "parse_override",
    "spec_from_dict",
]

ADAPTER_TYPES = ("lora", "dora", "ia3", "none")
DEFAULT_OBJECTIVE = "run_trial"
BUILTIN_PROBLEMS = ("zdt1", "zdt2", "dtlz2")

_RANKING = "precision|recall|ndcg|hit|mrr|ild|novelty|coverage|tail_share|gini"
_METRIC_RE = re.compile(rf"^(?:(?:cold|tail)/)?(?:(?:{_RANKING})@\d+|ctr_auc|ctr_logloss)$")
_COST_METRICS = ("cost/seconds", "cost/train_tokens", "cost/trainable_params", "cost/peak_mem_mb")
_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_@/.\-]+)\s*(?P<op>>=|<=)\s*(?P<value>\S+)\s*$"
)


def is_known_metric(name: str) -> bool:
    """Whether ``name`` is a metric the default trial reports (``precision@10``, ``cold/ndcg@5``)."""
    return bool(_METRIC_RE.match(name)) or name in _COST_METRICS


class _Located(ValueError):
    """A cross-field error that knows the dotted location it belongs to."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        self.loc = loc
        super().__init__(message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- trial config


class SplitConfig(_Strict):
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

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"must be three non-negative shares summing to 1, got {list(v)}")
        return v


class SyntheticConfig(_Strict):
    n_users: int = Field(300, ge=2)
    n_items: int = Field(200, ge=2)
    n_genres: int = Field(8, ge=1)
    interactions_per_user: int = Field(30, ge=3)
    popularity_exponent: float = Field(1.0, ge=0.0, description="Zipf exponent of item popularity.")
    genre_affinity: float = Field(
        4.0, ge=0.0, description="How strongly users prefer their genres."
    )
    seed: int = 0


class DataConfig(_Strict):
    dataset: Literal["movielens-100k", "synthetic", "csv", "recbole"] = "movielens-100k"
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
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @model_validator(mode="after")
    def _path_required(self) -> DataConfig:
        if self.dataset in ("csv", "recbole") and not self.path:
            raise _Located(
                ("path",), f"dataset {self.dataset!r} needs data.path (a file or directory)"
            )
        return self


class TinyModelConfig(_Strict):
    hidden_size: int = Field(32, ge=4)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(64, ge=4)
    seed: int = 0


class ModelConfig(_Strict):
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


class AdapterConfig(_Strict):
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
        if v not in ADAPTER_TYPES:
            hint = difflib.get_close_matches(v, ADAPTER_TYPES, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"must be one of {list(ADAPTER_TYPES)}, got {v!r}{extra}")
        return v

    @model_validator(mode="after")
    def _rank_positive(self) -> AdapterConfig:
        if self.type in ("lora", "dora") and self.r < 1:
            raise _Located(("r",), f"rank must be >= 1 for {self.type}, got {self.r}")
        return self


class FusionConfig(_Strict):
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="f = alpha*z(semantic) + (1-alpha)*z(collaborative)."
    )
    cf: Literal["ease", "itemknn", "mf"] = Field(
        "ease",
        description="Collaborative backbone: ease, itemknn (closed form, cached) or mf (learned).",
    )
    ease_lambda: float | None = Field(
        None, gt=0, description="EASE L2 weight (default: tuned on validation)."
    )
    knn_neighbours: int = Field(100, ge=1, description="ItemKNN neighbours per item.")
    id_dim: int = Field(64, ge=1, description="ID embedding size (cf: mf).")


class LossWeights(_Strict):
    ranking: float = Field(1.0, ge=0.0)
    ctr: float = Field(0.2, ge=0.0)
    diversity: float = Field(0.0, ge=0.0)
    novelty: float = Field(0.0, ge=0.0)


class LossConfig(_Strict):
    weights: LossWeights = Field(default_factory=LossWeights)
    ranking: Literal["softmax", "bpr"] = "softmax"
    temperature: float = Field(
        0.25,
        gt=0.0,
        description="Start value of the (learned) softmax temperature over fused z-scores.",
    )

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> LossConfig:
        w = self.weights
        if w.ranking + w.ctr + w.diversity + w.novelty <= 0:
            raise _Located(("weights",), "at least one loss weight must be > 0, got all zero")
        return self


class TrainConfig(_Strict):
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
    early_stop_metric: str = "ndcg@10"
    refresh_every: int = Field(
        50, ge=1, description="Refresh cached item embeddings every N steps."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    progress: bool = True

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"learning rate must be > 0, got {v}")
        return v

    @field_validator("early_stop_metric")
    @classmethod
    def _metric_known(cls, v: str) -> str:
        if not is_known_metric(v):
            raise ValueError(f"unknown metric {v!r} (e.g. 'ndcg@10', 'precision@10')")
        return v


class RerankConfig(_Strict):
    mmr_lambda: float = Field(1.0, ge=0.0, le=1.0, description="1 = pure relevance.")
    pop_penalty: float = Field(0.0, ge=0.0, description="beta: subtract beta*normalised log-pop.")
    candidates: int = Field(100, ge=1)


class EvalConfig(_Strict):
    k: int = Field(10, ge=1)
    cold_user_max: int = Field(10, ge=0, description="Users with <= N train items are 'cold'.")
    head_share: float = Field(0.8, gt=0.0, le=1.0, description="Head items = top share of train.")
    batch_size: int = Field(256, ge=1)


# --------------------------------------------------------------------------- study level


class Dimension(_Strict):
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, v: Any) -> Any:
        if not isinstance(v, dict) or "kind" in v:
            return v
        kinds = [k for k in ("float", "int", "categorical") if k in v]
        if len(kinds) != 1:
            raise ValueError(
                "a dimension is {float: [low, high]}, {int: [low, high]} or "
                f"{{categorical: [a, b, ...]}} (optional log/step), got {v!r}"
            )
        kind = kinds[0]
        rest = {k: val for k, val in v.items() if k != kind}
        if kind == "categorical":
            return {"kind": kind, "choices": v[kind], **rest}
        bounds = v[kind]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise ValueError(f"{kind}: expected [low, high], got {bounds!r}")
        return {"kind": kind, "low": bounds[0], "high": bounds[1], **rest}

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError("categorical: needs a non-empty list of choices")
            if self.log or self.step is not None:
                raise ValueError("categorical: log/step do not apply")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.kind}: needs low and high")
        if self.low > self.high:
            raise ValueError(
                f"{self.kind}: low must be <= high, got low={self.low} > high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"{self.kind}: log scale needs low > 0, got low={self.low}")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"int: bounds must be integers, got [{self.low}, {self.high}]")
        return self

    def to_yaml(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"categorical": list(self.choices or [])}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.kind == "int":
            out[self.kind] = [int(self.low or 0), int(self.high or 0)]
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


class Objective(_Strict):
    metric: str
    direction: Literal["minimize", "maximize"]
    split: Literal["val"] = Field("val", description="The driver optimises validation metrics.")

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, v: Any) -> Any:
        if v not in ("minimize", "maximize"):
            raise ValueError(f"must be 'minimize' or 'maximize', got {v!r}")
        return v


class Constraint(_Strict):
    metric: str
    op: Literal[">=", "<="]
    value: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT_RE.match(str(text))
        if not m:
            raise ValueError(
                f"expected '<metric> >= <number>' or '<metric> <= <number>', got {text!r}"
            )
        try:
            value = float(m["value"])
        except ValueError:
            raise ValueError(
                f"threshold must be a number, got {m['value']!r} in {text!r}"
            ) from None
        return cls(metric=m["metric"], op=m["op"], value=value)  # type: ignore[arg-type]

    def violation(self, observed: float) -> float:
        """Optuna convention: <= 0 means satisfied."""
        return self.value - observed if self.op == ">=" else observed - self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class DriverConfig(_Strict):
    backend: Literal["optuna", "pymoo"] = "optuna"
    algorithm: Literal["nsga2", "nsga3", "tpe", "random", "gp"] = "nsga2"
    population: int = Field(8, ge=2)
    seed: int = 0
    crossover: Literal["uniform", "sbx", "blxalpha", "spx", "undx", "vsbx"] = "uniform"
    crossover_prob: float = Field(0.9, ge=0.0, le=1.0)
    mutation_prob: float | None = Field(None, ge=0.0, le=1.0)
    reference_point: list[float] | None = Field(
        None, description="Hypervolume reference point in objective units (default: derived)."
    )
    sweep_rerank: bool = Field(
        True,
        description="Also record every fine-tune at a grid of the searched re-ranking knobs "
        "(inference only, seconds each) as trials linked to it.",
    )
    heartbeat_interval: int = Field(
        10, ge=1, description="Seconds between a running trial's heartbeats."
    )
    grace_period: int = Field(
        30, ge=2, description="A trial silent this long is failed and retried."
    )

    @model_validator(mode="after")
    def _combo(self) -> DriverConfig:
        if self.backend == "pymoo" and self.algorithm not in ("nsga2", "nsga3"):
            raise _Located(
                ("algorithm",), f"pymoo backend supports nsga2 and nsga3, got {self.algorithm!r}"
            )
        return self


class BudgetConfig(_Strict):
    n_trials: int = Field(12, ge=1)
    timeout: float | None = Field(
        None, gt=0, description="Seconds; stop launching new trials after."
    )
    max_failures: int = Field(10, ge=1, description="Stop a run after this many failed trials.")


_TRIAL_SECTIONS = ("seed", "data", "model", "adapter", "fusion", "loss", "train", "rerank", "eval")


class StudySpec(_Strict):
    name: str = Field("study", min_length=1)
    description: str = ""
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    objective: str = Field(
        DEFAULT_OBJECTIVE,
        description="run_trial (default), a built-in problem (zdt1, zdt2, dtlz2) or module:function.",
    )
    problem: dict[str, int] = Field(
        default_factory=dict, description="Built-in problem options, e.g. {n_var: 10, n_obj: 3}."
    )
    search_space: dict[str, Dimension] = Field(default_factory=dict)
    objectives: list[Objective] = Field(
        default_factory=lambda: [
            Objective(metric="precision@10", direction="maximize"),
            Objective(metric="ild@10", direction="maximize"),
        ]
    )
    constraints: list[Constraint] = Field(default_factory=list)
    driver: DriverConfig = Field(default_factory=DriverConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    storage: str | None = Field(
        None, description="Optuna storage URL (default: SQLite in out_dir)."
    )
    out_dir: str | None = Field(None, description="Study directory (default: reports/<name>).")
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list, description="Named param sets run first, after the base config."
    )

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError(f"expected a list of strings like 'precision@10 >= 0.02', got {v!r}")
        return [Constraint.parse(c) if isinstance(c, str) else c for c in v]

    @field_validator("objective")
    @classmethod
    def _objective_ref(cls, v: str) -> str:
        if v in (DEFAULT_OBJECTIVE, *BUILTIN_PROBLEMS) or re.match(r"^[\w.]+:[\w.]+$", v):
            return v
        raise ValueError(
            f"must be 'run_trial', one of {list(BUILTIN_PROBLEMS)} or 'package.module:function', "
            f"got {v!r}"
        )

    # ---- derived views -------------------------------------------------------------

    @property
    def uses_default_trial(self) -> bool:
        return self.objective == DEFAULT_OBJECTIVE

    @property
    def study_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("reports") / self.name

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{(self.study_dir / 'study.db').as_posix()}"

    def trial_dict(self) -> dict[str, Any]:
        """The trial config part, as plain data."""
        dumped = self.model_dump(mode="json")
        return {k: dumped[k] for k in _TRIAL_SECTIONS}

    def with_params(self, params: dict[str, Any]) -> StudySpec:
        """A copy with the dotted-path ``params`` applied and re-validated."""
        raw = self.to_dict(redact=False)
        for path, value in params.items():
            _set_path(raw, path.split("."), value, full=path)
        return spec_from_dict(raw)

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain data (what spec.yaml, the study and every trial record hold); a password in
        ``storage`` is replaced by ``***`` unless ``redact=False`` (in-process copies only)."""
        out = self.model_dump(mode="json")
        if redact and out.get("storage"):
            from moo_search.redact import redact_url

            out["storage"] = redact_url(out["storage"])
        out["search_space"] = {k: d.to_yaml() for k, d in self.search_space.items()}
        out["constraints"] = [str(c) for c in self.constraints]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    # ---- cross-field validation ----------------------------------------------------

    @model_validator(mode="after")
    def _study_checks(self) -> StudySpec:
        if self.uses_default_trial:
            for i, obj in enumerate(self.objectives):
                if not is_known_metric(obj.metric):
                    raise _Located(
                        ("objectives", i, "metric"),
                        f"unknown metric {obj.metric!r}; expected e.g. precision@10, ndcg@10, "
                        "ild@10, novelty@10, coverage@10, ctr_auc, cold/recall@10, cost/seconds",
                    )
            for i, c in enumerate(self.constraints):
                if not is_known_metric(c.metric):
                    raise _Located(("constraints", i), f"unknown metric {c.metric!r} in {str(c)!r}")
            for path, dim in self.search_space.items():
                _check_dimension_path(path, dim)
        if not self.objectives:
            raise _Located(("objectives",), "at least one objective is required, got []")
        names = [o.metric for o in self.objectives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _Located(("objectives",), f"each metric may appear once, got duplicates {dupes}")
        if self.driver.reference_point is not None and len(self.driver.reference_point) != len(
            self.objectives
        ):
            raise _Located(
                ("driver", "reference_point"),
                f"needs one value per objective ({len(self.objectives)}), "
                f"got {len(self.driver.reference_point)}",
            )
        if self.driver.algorithm == "nsga3" and len(self.objectives) < 2:
            raise _Located(("driver", "algorithm"), "nsga3 needs at least 2 objectives")
        return self


def _check_dimension_path(path: str, dim: Dimension) -> None:
    parts = path.split(".")
    model: type[BaseModel] = StudySpec
    if parts[0] not in _TRIAL_SECTIONS:
        hint = _closest(parts[0], _TRIAL_SECTIONS)
        raise _Located(
            ("search_space", path),
            f"a dimension must point into the trial config ({', '.join(_TRIAL_SECTIONS)}); "
            f"{parts[0]!r} is not one of them{hint}",
        )
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            hint = _closest(part, list(fields))
            where = ".".join(parts[:i]) or "the spec"
            raise _Located(("search_space", path), f"{where} has no field {part!r}{hint}")
        ann = fields[part].annotation
        sub = _model_in(ann)
        if i < len(parts) - 1:
            if sub is None:
                raise _Located(
                    ("search_space", path), f"{'.'.join(parts[: i + 1])} is a value, not a section"
                )
            model = sub
        elif sub is not None:
            raise _Located(
                ("search_space", path), f"{path} is a section; point at one of its values"
            )


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _closest(word: str, options: Any) -> str:
    hint = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {hint[0]!r}?" if hint else ""


# --------------------------------------------------------------------------- loading


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the model found at ``loc`` (for typo suggestions)."""
    model: type[BaseModel] | None = StudySpec
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = _model_in(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def _format_pydantic(err: ValidationError, source: str) -> SpecError:
    lines: list[str] = []
    first_field: str | None = None
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _Located):
            loc = loc + ctx_err.loc
        field = ".".join(str(p) for p in loc) or "(top level)"
        first_field = first_field or field
        if e["type"] == "extra_forbidden":
            valid = _fields_at(loc[:-1])
            hint = _closest(str(loc[-1]), valid)
            msg = f"unknown key {loc[-1]!r}{hint} (valid keys: {', '.join(sorted(valid))})"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = str(ctx_err) if ctx_err is not None else e["msg"]
            msg = msg.removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("value_error", "assertion_error"):
                msg = f"{msg}, got {e['input']!r}"
        lines.append(f"{field}: {msg}")
    where = f"{source}: " if source else ""
    text = where + ("invalid spec\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])
    spec_err = SpecError(text)
    spec_err.field = first_field
    return spec_err


def spec_from_dict(raw: dict[str, Any], *, source: str = "") -> StudySpec:
    """Validate plain data into a :class:`StudySpec` (raises :class:`SpecError`)."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source or 'spec'}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as e:
        raise _format_pydantic(e, source) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=3e-4"`` -> ``("train.lr", 0.0003)``; the value is typed like YAML."""
    if "=" not in text:
        raise SpecError(f"--set expects path=value, got {text!r}", field="--set")
    path, _, value = text.partition("=")
    path = path.strip()
    if not path:
        raise SpecError(f"--set expects path=value, got {text!r}", field="--set")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise SpecError(f"value {value!r} is not valid YAML: {e}", field=path) from None
    if isinstance(parsed, str) and re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", parsed):
        parsed = float(parsed)  # YAML 1.1 reads 3e-4 as a string
    return path, parsed


def _set_path(raw: dict[str, Any], parts: list[str], value: Any, *, full: str) -> None:
    """Set ``value`` at a dotted path; numeric parts index lists (``objectives.0.direction``)."""
    if parts[0] == "search_space" and len(parts) > 1:
        # keys of search_space contain dots themselves: the rest is one key
        raw.setdefault("search_space", {})[".".join(parts[1:])] = value
        return
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "the spec"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(
                    f"{where} is a list of {len(node)}; {part!r} is not an index into it",
                    field=full,
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise SpecError(f"{where} is a value, not a section", field=full)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        _set_path(out, path.split("."), value, full=path)
    return out


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Load, override and validate a study spec.

    Args:
        path: YAML file.
        overrides: ``["train.lr=3e-4", ...]`` applied before validation.

    Raises:
        SpecError: the file is missing or not YAML, or a field is invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}", field=str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    return spec_from_dict(raw, source=str(p))
