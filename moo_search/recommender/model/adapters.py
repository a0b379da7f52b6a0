"""PEFT adapters: one builder per adapter type, registered in :data:`moo_search.recommender.registries.ADAPTERS`.

A builder maps ``(model, AdapterConfig)`` to a PEFT config; ``none`` (no adapter) maps to None.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

from moo_search.errors import SpecError
from moo_search.recommender.config import AdapterConfig
from moo_search.recommender.registries import ADAPTERS

__all__ = ["apply_adapter", "linear_module_names", "quiet_peft"]

_LAYER_RE = re.compile(r"\.layers?\.(\d+)\.")


def linear_module_names(model: Any) -> list[str]:
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def _match(model: Any, targets: list[str], layers: list[int] | None, field: str) -> list[str]:
    """Full names of the Linear modules whose name ends with a target, in ``layers``."""
    names = linear_module_names(model)
    out: list[str] = []
    for t in targets:
        hits = [n for n in names if n == t or n.endswith("." + t)]
        if not hits:
            suffixes = sorted(
                {".".join(n.split(".")[-2:]) for n in names} | {n.split(".")[-1] for n in names}
            )
            raise SpecError(
                f"target module {t!r} matches no linear layer of the model; "
                f"available: {', '.join(suffixes)}",
                field=field,
            )
        out.extend(hits)
    if layers is not None:
        present = sorted({int(m.group(1)) for n in out if (m := _LAYER_RE.search(n))})
        bad = [i for i in layers if i not in present]
        if bad:
            raise SpecError(
                f"layers {bad} do not exist; the model has layers {present}", field="adapter.layers"
            )
        out = [n for n in out if (m := _LAYER_RE.search(n)) and int(m.group(1)) in layers]
    return sorted(set(out))


@ADAPTERS.register("lora")
def lora_config(model: Any, cfg: AdapterConfig, *, dora: bool = False) -> Any:
    from peft import LoraConfig

    targets = _match(model, cfg.target_modules, cfg.layers, "adapter.target_modules")
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,  # type: ignore[arg-type]  # PEFT annotates int; scaling is alpha / r
        lora_dropout=cfg.dropout,
        target_modules=targets,
        use_dora=dora,
        bias="none",
    )


@ADAPTERS.register("dora")
def _dora(model: Any, cfg: AdapterConfig) -> Any:
    return lora_config(model, cfg, dora=True)


@ADAPTERS.register("ia3")
def _ia3(model: Any, cfg: AdapterConfig) -> Any:
    from peft import IA3Config

    targets = _match(model, cfg.target_modules, cfg.layers, "adapter.target_modules")
    ff = _match(model, cfg.feedforward_modules, cfg.layers, "adapter.feedforward_modules")
    return IA3Config(target_modules=sorted(set(targets) | set(ff)), feedforward_modules=ff)


ADAPTERS.register("none", None)


def apply_adapter(model: Any, cfg: AdapterConfig) -> Any:
    """Wrap ``model`` with the configured PEFT adapter (only adapter weights train)."""
    build = ADAPTERS.get(cfg.type)
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
