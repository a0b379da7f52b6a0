"""The training loop: AdamW, warm-up + cosine decay, clipping, early stopping, NaN guard."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from moo_search.errors import TrialFailed
from moo_search.model.recommender import Recommender
from moo_search.model.tokens import TokenTable
from moo_search.spec import LossConfig, TrainConfig
from moo_search.train import losses as L

__all__ = ["TrainData", "TrainHistory", "pick_device", "train"]

logger = logging.getLogger("moo_search")


@dataclass
class TrainData:
    users: np.ndarray  # (n,) train pairs
    items: np.ndarray
    clicks: np.ndarray  # (n,) float 0/1
    user_tokens: TokenTable
    item_tokens: TokenTable
    features: torch.Tensor  # (I, d) unit-norm item features
    self_information: torch.Tensor  # (I,) -log2 pop


@dataclass
class TrainHistory:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False
    train_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "loss": self.loss,
            "terms": self.terms,
            "evals": self.evals,
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "train_tokens": self.train_tokens,
            "seconds": self.seconds,
        }


def pick_device(pref: str) -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrialFailed("train.device is 'cuda' but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def _autocast(device: torch.device, amp: str) -> tuple[Callable[[], Any] | None, bool]:
    """(autocast context factory or None, needs a GradScaler)."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), False
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), True


def _schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warm = max(1, int(total * warmup_ratio))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def train(
    model: Recommender,
    data: TrainData,
    *,
    train_cfg: TrainConfig,
    loss_cfg: LossConfig,
    seed: int,
    device: torch.device,
    evaluate: Callable[[], dict[str, float]] | None = None,
    id_warmup_epochs: int = 3,
) -> TrainHistory:
    """Fine-tune ``model`` in place; on early stopping the best weights are restored.

    Raises:
        TrialFailed: the loss became NaN/inf or exploded (> 50x its first value).
    """
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    w = L.normalised_weights(**loss_cfg.weights.model_dump())
    autocast, needs_scaler = _autocast(device, train_cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    opt = torch.optim.AdamW(
        [
            {
                "params": list(model.adapter_parameters()),
                "lr": train_cfg.lr,
                "weight_decay": train_cfg.weight_decay,
            },
            {"params": model.head_parameters(), "lr": train_cfg.id_lr, "weight_decay": 0.0},
        ]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _schedule(train_cfg.max_steps, train_cfg.warmup_ratio)
    )
    hist = TrainHistory()
    n = len(data.users)
    users_t = torch.as_tensor(np.array(data.users), device=device)
    items_t = torch.as_tensor(np.array(data.items), device=device)
    clicks_t = torch.as_tensor(data.clicks, dtype=torch.float32, device=device)
    feats = data.features.to(device)
    selfinfo = data.self_information.to(device)
    semantic_on = model.alpha > 0

    _warm_up_ids(model, users_t, items_t, train_cfg, id_warmup_epochs, gen)

    best_val, best_state, bad_evals, first_loss = -math.inf, None, 0, None
    item_cache: torch.Tensor | None = None
    model.train()
    bar = _progress(train_cfg)
    for step in range(train_cfg.max_steps):
        if semantic_on and (item_cache is None or step % train_cfg.refresh_every == 0):
            item_cache = model.encode_table(data.item_tokens, device, autocast=autocast)
            model.train()
        idx = rng.integers(0, n, train_cfg.batch_size)
        u, i = users_t[idx], items_t[idx]
        with autocast() if autocast else contextlib.nullcontext():
            r_full = model.collaborative(u)
            if semantic_on:
                assert item_cache is not None
                u_ids, u_mask = data.user_tokens.batch(data.users[idx])
                i_ids, i_mask = data.item_tokens.batch(data.items[idx])
                hist.train_tokens += int(u_mask.sum() + i_mask.sum())
                eu = model.encode(u_ids.to(device), u_mask.to(device))
                ei = model.encode(i_ids.to(device), i_mask.to(device))
                s_full = eu @ item_cache.T
                s_full = s_full.index_put(
                    (torch.arange(len(idx), device=device)[:, None], i[None, :]), eu @ ei.T
                )  # fresh, grad-carrying in-batch columns
            else:
                s_full = torch.zeros_like(r_full)
            logits = model.fuse(s_full, r_full).float()
            terms: dict[str, torch.Tensor] = {}
            # extra ID-only pairs: cheap, they keep the collaborative tower and CTR head learning
            j = torch.randint(0, n, (train_cfg.id_batch_size,), generator=gen).to(device)
            uj, ij = users_t[j], items_t[j]
            if w["ranking"] > 0:
                if loss_cfg.ranking == "softmax":
                    terms["ranking"] = L.softmax_loss(logits, i)
                else:
                    terms["ranking"] = L.bpr_loss(logits, i, gen)
                terms["ranking"] = 0.5 * (
                    terms["ranking"] + L.softmax_loss(model.collaborative(uj), ij)
                )
            if w["ctr"] > 0:
                rows = torch.arange(len(idx), device=device)
                ctr_logit = model.ctr_logit(u, i, r_full[rows, i], ei if semantic_on else None)
                ej = item_cache[ij] if semantic_on and item_cache is not None else None
                ctr_j = model.ctr_logit(uj, ij, model.collaborative(uj, ij), ej)
                terms["ctr"] = 0.5 * (
                    L.ctr_loss(ctr_logit.float(), clicks_t[idx])
                    + L.ctr_loss(ctr_j.float(), clicks_t[j])
                )
            if w["diversity"] > 0 or w["novelty"] > 0:
                probs = torch.softmax(logits, dim=-1)
                if w["diversity"] > 0:
                    terms["diversity"] = L.diversity_loss(probs, feats)
                if w["novelty"] > 0:
                    terms["novelty"] = L.novelty_loss(probs, selfinfo)
            loss = sum(w[k] * v for k, v in terms.items())
        assert isinstance(loss, torch.Tensor)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrialFailed(
                f"loss became {value} at step {step}; lower train.lr (now {train_cfg.lr:g})"
            )
        first_loss = first_loss if first_loss is not None else abs(value) + 1e-8
        if abs(value) > 50 * first_loss + 10:
            raise TrialFailed(
                f"loss exploded to {value:.4g} at step {step} (first {first_loss:.4g}); "
                f"lower train.lr (now {train_cfg.lr:g})"
            )
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for g in opt.param_groups for p in g["params"]], train_cfg.grad_clip
        )
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched.step()
        hist.steps.append(step)
        hist.loss.append(value)
        hist.terms.append({k: float(v.detach()) for k, v in terms.items()})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")

        last = step == train_cfg.max_steps - 1
        if evaluate is not None and ((step + 1) % train_cfg.eval_every == 0 and not last):
            metrics = evaluate()
            model.train()
            score = metrics.get(train_cfg.early_stop_metric, float("nan"))
            hist.evals.append({"step": step, **metrics})
            logger.info("step %d: %s = %.4f", step, train_cfg.early_stop_metric, score)
            if score > best_val:
                best_val, bad_evals, hist.best_step = score, 0, step
                best_state = _trainable_state(model)
            else:
                bad_evals += 1
                if bad_evals >= train_cfg.patience:
                    hist.stopped_early = True
                    break
    if bar is not None:
        bar.close()
    if best_state is not None and evaluate is not None:
        final = evaluate()
        hist.evals.append({"step": hist.steps[-1], **final})
        if final.get(train_cfg.early_stop_metric, -math.inf) < best_val:
            model.load_state_dict(best_state, strict=False)
        else:
            hist.best_step = hist.steps[-1]
    else:
        hist.best_step = hist.steps[-1] if hist.steps else 0
    model.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def _warm_up_ids(
    model: Recommender,
    users: torch.Tensor,
    items: torch.Tensor,
    cfg: TrainConfig,
    epochs: int,
    gen: torch.Generator,
) -> None:
    """A few cheap epochs of full-catalog softmax on the ID embeddings alone."""
    if epochs <= 0:
        return
    params = [model.user_emb.weight, model.item_emb.weight, model.item_bias]
    opt = torch.optim.Adam(params, lr=cfg.id_lr)
    n, bs = len(users), max(cfg.id_batch_size, 256)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(users.device)
        for s in range(0, n, bs):
            b = perm[s : s + bs]
            loss = L.softmax_loss(model.collaborative(users[b]), items[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def _progress(cfg: TrainConfig) -> Any:
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI, background workers)
    return tqdm(
        total=cfg.max_steps,
        desc="train",
        unit="step",
        leave=False,
        dynamic_ncols=True,
        disable=None,
    )
