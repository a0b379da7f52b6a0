"""Training set-up: the device, mixed precision, the optimizer and its schedule, and early
stopping."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from moo_search.errors import TrialFailed
from moo_search.recommender.config import TrainConfig
from moo_search.recommender.model.recommender import Recommender

__all__ = ["EarlyStopping", "autocast_for", "cpu_has_fast_bf16", "make_optimizer", "pick_device"]

logger = logging.getLogger("moo_search")


def pick_device(pref: str) -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrialFailed("train.device is 'cuda' but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX-512 BF16, from
    /proc/cpuinfo); without it bf16 matmuls are emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def autocast_for(device: torch.device, amp: str) -> tuple[Callable[[], Any] | None, bool]:
    """(autocast context factory or None, needs a GradScaler).

    ``auto``: bf16 on CUDA devices that support it (else fp16 with a scaler) and on CPUs with
    fast bf16 (else fp32); ``bf16`` / ``fp16`` force a precision; ``off`` is fp32. Weights,
    optimizer state and the loss stay fp32 (autocast runs the matmuls in low precision).
    """
    if amp == "off":
        return None, False
    if device.type == "cpu":
        if amp == "bf16" or (amp == "auto" and cpu_has_fast_bf16()):
            return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), False
        if amp == "fp16":
            logger.warning("train.amp fp16 is not supported on the CPU; training in fp32")
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), False
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), True


def _schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warm = max(1, int(total * warmup_ratio))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def make_optimizer(model: Recommender, cfg: TrainConfig) -> tuple[Any, Any]:
    """AdamW with the adapter at ``train.lr`` and ID embeddings / heads at ``train.id_lr``,
    and its warm-up + cosine schedule."""
    opt = torch.optim.AdamW(
        [
            {
                "params": list(model.adapter_parameters()),
                "lr": cfg.lr,
                "weight_decay": cfg.weight_decay,
            },
            {"params": model.head_parameters(), "lr": cfg.id_lr, "weight_decay": 0.0},
        ]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg.max_steps, cfg.warmup_ratio))
    return opt, sched


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


@dataclass
class EarlyStopping:
    """Keeps the best trainable weights by ``metric`` and says when ``patience`` evaluations
    in a row did not improve it."""

    metric: str
    patience: int
    best: float = -math.inf
    best_step: int = 0
    bad: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, model: torch.nn.Module, step: int, metrics: dict[str, float]) -> bool:
        """Record an evaluation; True when training should stop."""
        score = metrics.get(self.metric, float("nan"))
        if score > self.best:
            self.best, self.bad, self.best_step = score, 0, step
            self.state = _trainable_state(model)
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore_if_better(self, model: torch.nn.Module, final: dict[str, float]) -> bool:
        """Load the best weights back when the final evaluation is worse; True if it did."""
        if self.state is not None and final.get(self.metric, -math.inf) < self.best:
            model.load_state_dict(self.state, strict=False)
            return True
        return False
