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
from moo_search.model.recommender import Recommender, standardise
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
    like_user: np.ndarray | None = None  # (n,) leave-one-out like-rate logits of each pair
    like_item: np.ndarray | None = None


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
    ctr_fit_logloss: float | None = None  # the CTR head's train log-loss after its final fit

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
            "ctr_fit_logloss": self.ctr_fit_logloss,
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

    if not model.fixed_cf:
        _warm_up_ids(model, users_t, items_t, train_cfg, id_warmup_epochs, gen)
    ctx = _BatchContext(
        users=users_t,
        items=items_t,
        clicks=clicks_t,
        features=feats,
        self_information=selfinfo,
        like_user=None
        if data.like_user is None
        else torch.as_tensor(data.like_user, device=device),
        like_item=None
        if data.like_item is None
        else torch.as_tensor(data.like_item, device=device),
    )

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
            s_full: torch.Tensor | None = None
            if semantic_on:
                assert item_cache is not None
                u_ids, u_mask = data.user_tokens.batch(data.users[idx])
                i_ids, i_mask = data.item_tokens.batch(data.items[idx])
                hist.train_tokens += int(u_mask.sum() + i_mask.sum())
                eu = model.encode(u_ids.to(device), u_mask.to(device))
                ei = model.encode(i_ids.to(device), i_mask.to(device))
                s_full = (eu @ item_cache.T).index_put(
                    (torch.arange(len(idx), device=device)[:, None], i[None, :]), eu @ ei.T
                )  # fresh, grad-carrying in-batch columns
            terms = _loss_terms(
                model,
                model.fuse(s_full, r_full).float(),
                r_full,
                s_full,
                u,
                i,
                idx,
                w,
                loss_cfg,
                train_cfg,
                ctx,
                gen,
            )
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


@dataclass
class _BatchContext:
    users: torch.Tensor
    items: torch.Tensor
    clicks: torch.Tensor
    features: torch.Tensor
    self_information: torch.Tensor
    like_user: torch.Tensor | None
    like_item: torch.Tensor | None


def _loss_terms(
    model: Recommender,
    fused: torch.Tensor,
    r_full: torch.Tensor,
    s_full: torch.Tensor | None,
    u: torch.Tensor,
    i: torch.Tensor,
    idx: np.ndarray,
    w: dict[str, float],
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    ctx: _BatchContext,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """The weighted terms of L = w_rank L_rank + w_ctr L_ctr + w_div L_div + w_nov L_nov."""
    terms: dict[str, torch.Tensor] = {}
    logits = model.logits(fused)
    if w["ranking"] > 0:
        rank = (
            L.softmax_loss(logits, i)
            if loss_cfg.ranking == "softmax"
            else L.bpr_loss(logits, i, gen)
        )
        if not model.fixed_cf:
            # extra ID-only pairs: cheap, they keep the learned collaborative tower learning
            j = torch.randint(0, len(ctx.users), (train_cfg.id_batch_size,), generator=gen)
            j = j.to(ctx.users.device)
            rank = 0.5 * (rank + L.softmax_loss(model.collaborative(ctx.users[j]), ctx.items[j]))
        terms["ranking"] = rank
    if w["ctr"] > 0:
        rows = torch.arange(len(idx), device=fused.device)
        t = torch.as_tensor(idx, device=fused.device)
        r_z = standardise(r_full.float())[rows, i]
        s_z = standardise(s_full.float())[rows, i] if s_full is not None else None
        feats = model.ctr_features(
            u,
            i,
            r_z,
            s_z,
            user_like=None if ctx.like_user is None else ctx.like_user[t],
            item_like=None if ctx.like_item is None else ctx.like_item[t],
        )
        terms["ctr"] = L.ctr_loss(model.ctr_logit(feats).float(), ctx.clicks[t])
    if w["diversity"] > 0 or w["novelty"] > 0:
        # at a fixed temperature: these terms must move the ranking, not flatten the softmax
        probs = torch.softmax(fused * model.log_scale.detach().exp(), dim=-1)
        if w["diversity"] > 0:
            terms["diversity"] = L.diversity_loss(probs, ctx.features)
        if w["novelty"] > 0:
            terms["novelty"] = L.novelty_loss(probs, ctx.self_information)
    return terms


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
