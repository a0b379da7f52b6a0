"""The adapter section, and what every registered adapter type declares about it.

Each adapter type is an :class:`AdapterType` record: its PEFT builder, the model of the
section's knobs it owns (LoRA and DoRA: ``r``, ``alpha``, ``dropout``; IA3:
``feedforward_modules``; every type: ``target_modules`` and ``layers``) and, for a plugin, the
model of its own extra knobs (``adapter.params``). A knob the chosen type does not own is
refused, naming it: ``{type: ia3, r: 16}`` is an error on ``adapter.r``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from moo_search.recommender.config._knobs import check_own_params
from moo_search.recommender.registries import ADAPTERS
from moo_search.spec._errors import Located, Strict

__all__ = [
    "OWNED_KNOBS",
    "AdapterConfig",
    "AdapterType",
    "IA3Knobs",
    "LoraKnobs",
    "NoKnobs",
    "foreign_knobs_dropped",
    "knobs_of",
    "switch_keeps",
]


class LoraKnobs(Strict):
    """The knobs of LoRA and DoRA (their defaults)."""

    r: int = Field(8, ge=1, description="Rank of the update.")
    alpha: float = Field(16.0, gt=0, description="Scaling: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter's input.")


class IA3Knobs(Strict):
    """The knobs of IA3 (besides the targets every type has)."""

    feedforward_modules: list[str] | None = Field(
        None, description="Feed-forward modules (None: the model family's)."
    )


class NoKnobs(Strict):
    """An adapter type with no knobs of the section's own (``none``)."""


M = TypeVar("M", bound=BaseModel)

OWNED_KNOBS = ("r", "alpha", "dropout", "feedforward_modules")
"""The section's fields that belong to one adapter type or another."""

_OLD_DUMP = {"r": 8, "alpha": 16.0, "dropout": 0.05, "feedforward_modules": None}
"""Their values in every config dumped before each type owned its knobs (read as unset)."""


@dataclass(frozen=True, kw_only=True)
class AdapterType:
    """A registered adapter type: ``build(model, cfg) -> PEFT config`` (None: no adapter),
    ``knobs`` (the :data:`OWNED_KNOBS` it takes, as a model with their defaults; None: all of
    them, as a bare builder function is read), ``params`` (the model of its own extra knobs,
    ``adapter.params``) and a one-line description."""

    build: Callable[[Any, Any], Any] | None
    knobs: type[BaseModel] | None = None
    params: type[BaseModel] | None = None
    description: str = ""
    adapted_from: Any = None  # the bare builder a plugin registered, wrapped (compat)

    @classmethod
    def of(cls, build: Any) -> AdapterType:
        """A bare ``build(model, cfg)`` registered as before adapter types were records: it
        owns every knob of the section, and its ``knobs`` / ``params`` attributes if set."""
        return cls(
            build=build,
            knobs=getattr(build, "knobs", None),
            params=getattr(build, "params", None),
            description=(build.__doc__ or "").strip(),
            adapted_from=build,
        )


def knobs_of(entry: AdapterType) -> type[BaseModel] | None:
    """The model of the section's knobs an adapter entry owns (None: all, the old way)."""
    return entry.knobs


class AdapterConfig(Strict):
    type: str = Field("lora", description="lora, dora, ia3, none or a plugin's adapter type.")
    r: int | None = Field(
        None, ge=1, description="LoRA/DoRA rank (default 8; refused for a type without one)."
    )
    alpha: float | None = Field(
        None, gt=0, description="LoRA/DoRA scaling, alpha / r scales the update (default 16)."
    )
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="LoRA/DoRA dropout on the input (default 0.05)."
    )
    target_modules: list[str] | Literal["default", "attention", "mlp", "all-linear"] = Field(
        "default",
        description="The modules to adapt: a named set of the model family's ('default' = "
        "PEFT's per-architecture choice, e.g. query/value for BERT, q_proj/v_proj for Llama; "
        "'attention'; 'mlp'; 'all-linear') or module name suffixes.",
    )
    feedforward_modules: list[str] | None = Field(
        None, description="IA3 feed-forward modules (None = the model family's)."
    )
    layers: list[int] | None = Field(None, description="Layer indices to adapt (None = all).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The adapter type's own knobs, checked against its params model (a "
        "registered type's ``params``; search them as adapter.params.<knob>).",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        return ADAPTERS.check(v)

    @model_validator(mode="before")
    @classmethod
    def _owned_knobs(cls, data: Any) -> Any:
        """The type's own knobs filled with its defaults; another type's refused, naming it
        (a value every old dump held is read as unset)."""
        if not isinstance(data, dict) or not isinstance(data.get("type", "lora"), str):
            return data
        name = data.get("type", "lora")
        if name not in ADAPTERS:
            return data  # the type's own validator names it
        model = knobs_of(ADAPTERS.get(name))
        if model is None:
            return {**{k: v for k, v in _OLD_DUMP.items() if data.get(k) is None}, **data}
        out = {k: v for k, v in data.items() if v is not None or k not in OWNED_KNOBS}
        for key in OWNED_KNOBS:
            if key in model.model_fields:
                out.setdefault(key, model.model_fields[key].default)
            elif key in out and out[key] == _OLD_DUMP[key]:
                out.pop(key)
            elif key in out:
                owned = [k for k in OWNED_KNOBS if k in model.model_fields]
                raise Located(
                    (key,),
                    f"adapter type {name!r} has no knob {key!r} (its own: "
                    f"{', '.join(owned) or 'none'}; every type: target_modules, layers); "
                    f"got {out[key]!r}",
                )
        return out

    def own(self, model: builtins.type[M]) -> M:
        """The knobs of ``model`` (:class:`LoraKnobs`, ...) this section holds, typed."""
        return model.model_validate({k: getattr(self, k) for k in model.model_fields})

    @model_validator(mode="after")
    def _own_params(self) -> AdapterConfig:
        check_own_params(ADAPTERS.get(self.type), self.params, "params", f"adapter {self.type!r}")
        return self


def switch_keeps(name: Any) -> set[str]:
    """The section's keys a switch to adapter type ``name`` keeps from the config it switches
    from: the targets every type has and the knobs ``name`` owns."""
    shared = {"type", "target_modules", "layers"}
    entry = ADAPTERS.get(name) if isinstance(name, str) and name in ADAPTERS else None
    model = knobs_of(entry) if entry is not None else None
    if model is None:
        return shared | set(OWNED_KNOBS) | {"params"}
    return shared | set(model.model_fields)


def foreign_knobs_dropped(adapter: Any) -> Any:
    """A stored adapter section (a trial's config, a bundle's) with the knobs its type does
    not own dropped whatever their value: a trial that switched type from the study's base
    config recorded the base's knobs beside its own before each type owned them."""
    if not isinstance(adapter, dict) or adapter.get("type", "lora") not in ADAPTERS:
        return adapter
    model = knobs_of(ADAPTERS.get(adapter.get("type", "lora")))
    if model is None:
        return adapter
    return {k: v for k, v in adapter.items() if k not in OWNED_KNOBS or k in model.model_fields}
