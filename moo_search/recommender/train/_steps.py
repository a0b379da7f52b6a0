"""The training loop's parts: the optimisation set-up and step, a batch's scores, the loss
guard, validation and early stopping's bookkeeping, the ID warm-up, the progress bar."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from moo_search.errors import TrialFailed
from moo_search.recommender.config import LossConfig, TrainConfig
from moo_search.recommender.model.recommender import NO_SCORE, Recommender
from moo_search.recommender.train import losses as L
from moo_search.recommender.train._setup import EarlyStopping, autocast_for, make_optimizer
from moo_search.recommender.train.terms import Batch, PairData

if TYPE_CHECKING:
    from moo_search.recommender.train.loop import TrainData, TrainHistory

__all__ = [
    "batch_scores",
    "check_loss",
    "keep_best",
    "optimisation",
    "optimizer_step",
    "pairs_on",
    "progress_bar",
    "record_step",
    "validate_at",
    "warm_up_ids",
]

logger = logging.getLogger("moo_search")


def optimisation(model: Recommender, train_cfg: TrainConfig, device: torch.device) -> Any:
    """(autocast, grad scaler or None, optimizer, schedule) for ``train.amp`` on ``device``."""
    autocast, needs_scaler = autocast_for(device, train_cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    opt, sched = make_optimizer(model, train_cfg)
    return autocast, scaler, opt, sched


def record_step(
    hist: TrainHistory, bar: Any, step: int, value: float, terms: dict[str, Any]
) -> None:
    hist.steps.append(step)
    hist.loss.append(value)
    hist.terms.append({k: float(v.detach()) for k, v in terms.items()})
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")


def validate_at(
    model: Recommender,
    evaluate: Callable[[], dict[str, float]],
    stopper: EarlyStopping,
    hist: TrainHistory,
    step: int,
) -> bool:
    """Validate at ``step``; whether early stopping says stop."""
    metrics = evaluate()
    model.train()
    hist.evals.append({"step": step, **metrics})
    logger.info("step %d: %s = %.4f", step, stopper.metric, metrics.get(stopper.metric, math.nan))
    return bool(stopper.update(model, step, metrics))


def keep_best(
    model: Recommender,
    evaluate: Callable[[], dict[str, float]] | None,
    stopper: EarlyStopping,
    hist: TrainHistory,
) -> None:
    """The last step's weights, or the best validated ones when they were better."""
    hist.best_step = hist.steps[-1] if hist.steps else 0
    if stopper.state is not None and evaluate is not None:
        final = evaluate()
        hist.evals.append({"step": hist.steps[-1], **final})
        if stopper.restore_if_better(model, final):
            hist.best_step = stopper.best_step


def pairs_on(data: TrainData, device: torch.device) -> PairData:
    def t(x: np.ndarray | None, dtype: Any = None) -> torch.Tensor | None:
        return None if x is None else torch.as_tensor(np.array(x), dtype=dtype, device=device)

    users, items, clicks = t(data.users), t(data.items), t(data.clicks, torch.float32)
    assert users is not None and items is not None and clicks is not None
    return PairData(
        users=users,
        items=items,
        clicks=clicks,
        features=data.features.to(device),
        self_information=data.self_information.to(device),
        like_user=t(data.like_user),
        like_item=t(data.like_item),
        offset_user=t(getattr(data, "offset_user", None)),
        offset_item=t(getattr(data, "offset_item", None)),
        item_tokens=data.item_tokens,
        neighbours=t(data.neighbours),
        hard_negatives=t(data.hard_negatives),
        ratings=t(data.ratings),
    )


def batch_scores(
    model: Recommender,
    data: TrainData,
    pairs: PairData,
    idx: np.ndarray,
    item_cache: torch.Tensor | None,
    hist: TrainHistory,
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    gen: torch.Generator,
    *,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Batch:
    """Scores of the batch's users over the catalog: collaborative rows, and semantic rows
    from the cached item embeddings with fresh, grad-carrying in-batch columns (``encoded``:
    the batch's user and item embeddings, when the caller encoded them)."""
    device = pairs.users.device
    u, i = pairs.users[idx], pairs.items[idx]
    r_full = model.collaborative(u)
    s_full: torch.Tensor | None = None
    eu = ei = None
    if model.alpha > 0:
        assert item_cache is not None
        users, items = data.users[idx], data.items[idx]
        hist.train_tokens += data.user_tokens.tokens(users) + data.item_tokens.tokens(items)
        if encoded is None:
            eu = model.encode_rows(data.user_tokens, users, device)
            ei = model.encode_rows(data.item_tokens, items, device)
        else:
            eu, ei = encoded
        s_full = (eu @ item_cache.T).index_put(
            (torch.arange(len(idx), device=device)[:, None], i[None, :]), eu @ ei.T
        )
    fused = model.fuse(s_full, r_full).float()
    if model.warm is not None:  # new items are not in the training catalog, not even as negatives
        fused = fused.masked_fill(~model.warm.to(device), NO_SCORE)
    return Batch(
        model=model,
        fused=fused,
        r_full=r_full,
        s_full=s_full,
        u=u,
        i=i,
        idx=idx,
        loss_cfg=loss_cfg,
        train_cfg=train_cfg,
        pairs=pairs,
        gen=gen,
        user_emb=eu,
        item_emb=ei,
        item_cache=item_cache,
    )


def check_loss(
    value: float, step: int, first: float | None, lr: float, terms: dict[str, Any]
) -> float:
    """The NaN / explosion guard; returns the first loss (the explosion yardstick). A term
    that is not finite at the first step is that term's fault (no update has run yet)."""
    if not math.isfinite(value):
        bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach()))]
        named = f" (term(s) {bad})" if bad else ""
        if step == 0 and bad:
            raise TrialFailed(
                f"loss term(s) {bad} gave {value} at the first step, before any update: the "
                f"term itself fails on this data (loss.weights.{bad[0]}), not train.lr"
            )
        raise TrialFailed(f"loss became {value} at step {step}{named}; lower train.lr (now {lr:g})")
    first = first if first is not None else abs(value) + 1e-8
    if abs(value) > 50 * first + 10:
        raise TrialFailed(
            f"loss exploded to {value:.4g} at step {step} (first {first:.4g}); "
            f"lower train.lr (now {lr:g})"
        )
    return first


def optimizer_step(opt: Any, sched: Any, scaler: Any | None, grad_clip: float) -> None:
    """After backward: unscale (fp16), clip, step."""
    if scaler is not None:
        scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    sched.step()


def warm_up_ids(
    model: Recommender,
    users: torch.Tensor,
    items: torch.Tensor,
    cfg: TrainConfig,
    epochs: int,
    gen: torch.Generator,
) -> None:
    """A few cheap epochs of full-catalog softmax on the learned backbone alone."""
    if epochs <= 0:
        return
    opt = torch.optim.Adam(model.learned_cf_parameters(), lr=cfg.id_lr)
    n, bs = len(users), max(cfg.id_batch_size, 256)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(users.device)
        for s in range(0, n, bs):
            b = perm[s : s + bs]
            loss = L.softmax_loss(model.collaborative(users[b]), items[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def progress_bar(cfg: TrainConfig) -> Any:
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
