"""PEFT adapters: one builder per adapter type, registered in :data:`moo_search.recommender.registries.ADAPTERS`.

Each type is an :class:`~moo_search.recommender.config.AdapterType`: a builder mapping
``(model, AdapterConfig)`` to a PEFT config (``none``: no builder), and the model of the knobs
it owns. A plugin registers its type the same way (a bare builder function still works: it
is read as owning every knob).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from moo_search.errors import SpecError
from moo_search.recommender.config import AdapterConfig, AdapterType
from moo_search.recommender.config._adapter import IA3Knobs, LoraKnobs, NoKnobs
from moo_search.recommender.model.encoder import family_of_model, model_type_of
from moo_search.recommender.registries import ADAPTERS

__all__ = ["adapted_targets", "apply_adapter", "linear_module_names", "quiet_peft"]


def linear_module_names(model: Any) -> list[str]:
    """Names of the modules an adapter can wrap: ``nn.Linear`` and GPT-2's ``Conv1D``."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear | Conv1D)]


def _conv1d_names(model: Any) -> set[str]:
    from transformers.pytorch_utils import Conv1D

    return {n for n, m in model.named_modules() if isinstance(m, Conv1D)}


def _suffixes(names: list[str]) -> list[str]:
    return sorted({".".join(n.split(".")[-2:]) for n in names} | {n.split(".")[-1] for n in names})


def _match_named(model: Any, targets: tuple[str, ...], set_name: str, field: str) -> list[str]:
    """Names matching any of a family's named set (a set may list alternatives: T5 v1's
    ``wi`` and v1.1's ``wi_0``/``wi_1``)."""
    names = linear_module_names(model)
    if set_name == "all-linear":  # PEFT's shorthand: every linear layer but an output head
        out = [n for n in names if "pooler" not in n.split(".") and "lm_head" not in n]
    else:
        out = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
    if not out:
        raise SpecError(
            f"the model family's target set {set_name!r} ({', '.join(targets)}) matches no "
            f"linear layer of the model; available: {', '.join(_suffixes(names))}",
            field=field,
        )
    return out


def _match_listed(model: Any, targets: list[str], field: str) -> list[str]:
    names = linear_module_names(model)
    out: list[str] = []
    for t in targets:
        hits = [n for n in names if n == t or n.endswith("." + t)]
        if not hits:
            raise SpecError(
                f"target module {t!r} matches no linear layer of the model; "
                f"available: {', '.join(_suffixes(names))}",
                field=field,
            )
        out.extend(hits)
    return out


def _in_layers(model: Any, names: list[str], layers: list[int] | None) -> list[str]:
    if layers is None or not names:
        return sorted(set(names))
    family = family_of_model(model)
    index = {n: family.layer_index(n) for n in names}
    present = sorted({i for i in index.values() if i is not None})
    bad = [i for i in layers if i not in present]
    if bad:
        raise SpecError(
            f"layers {bad} do not exist; the model has layers {present}", field="adapter.layers"
        )
    return sorted({n for n, i in index.items() if i is not None and i in layers})


def adapted_targets(model: Any, cfg: AdapterConfig) -> tuple[list[str], list[str]]:
    """(target modules, IA3 feed-forward modules): full module names, from the spec's list or
    the model family's named set, in ``adapter.layers``."""
    family, model_type = family_of_model(model), model_type_of(model)
    field = "adapter.target_modules"
    tm = cfg.target_modules
    if isinstance(tm, str):
        named = () if tm == "all-linear" else family.targets(model_type, tm)
        targets = _match_named(model, named, tm, field)
    else:
        targets = _match_listed(model, tm, field)
    ff: list[str] = []
    if cfg.type == "ia3":
        if cfg.feedforward_modules is None:
            ff = _match_named(
                model, family.feedforward(model_type), "feed-forward", "adapter.feedforward_modules"
            )
        else:
            ff = _match_listed(model, cfg.feedforward_modules, "adapter.feedforward_modules")
    return _in_layers(model, targets, cfg.layers), _in_layers(model, ff, cfg.layers)


def lora_config(model: Any, cfg: AdapterConfig, *, dora: bool = False) -> Any:
    from peft import LoraConfig

    targets, _ = adapted_targets(model, cfg)
    knobs = cfg.own(LoraKnobs)
    return LoraConfig(
        r=knobs.r,
        lora_alpha=knobs.alpha,  # type: ignore[arg-type]  # PEFT annotates int; scaling is alpha / r
        lora_dropout=knobs.dropout,
        target_modules=targets,
        use_dora=dora,
        bias="none",
        # GPT-2's Conv1D stores its weight transposed (PEFT would set this with a warning)
        fan_in_fan_out=bool(set(targets) & _conv1d_names(model)),
    )


def _dora(model: Any, cfg: AdapterConfig) -> Any:
    return lora_config(model, cfg, dora=True)


def _ia3(model: Any, cfg: AdapterConfig) -> Any:
    from peft import IA3Config

    targets, ff = adapted_targets(model, cfg)
    return IA3Config(
        target_modules=sorted(set(targets) | set(ff)),
        feedforward_modules=ff,
        fan_in_fan_out=bool(set(targets) & _conv1d_names(model)),
    )


ADAPTERS.register(
    "lora", AdapterType(build=lora_config, knobs=LoraKnobs, description="LoRA (Hu et al. 2021)")
)
ADAPTERS.register(
    "dora",
    AdapterType(
        build=_dora, knobs=LoraKnobs, description="DoRA, weight-decomposed LoRA (Liu et al. 2024)"
    ),
)
ADAPTERS.register(
    "ia3",
    AdapterType(
        build=_ia3, knobs=IA3Knobs, description="IA3, learned activation scalings (Liu et al. 2022)"
    ),
)
ADAPTERS.register(
    "none", AdapterType(build=None, knobs=NoKnobs, description="no adapter: the frozen model")
)


def apply_adapter(model: Any, cfg: AdapterConfig) -> Any:
    """Wrap ``model`` with the configured PEFT adapter (only adapter weights train)."""
    build = ADAPTERS.get(cfg.type).build
    if build is None:
        return model
    from peft import get_peft_model

    peft_config = build(model, cfg)
    with quiet_peft():
        return get_peft_model(model, peft_config)


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Silence one known deprecation: PEFT still calls transformers' is_gradient_checkpointing."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield
