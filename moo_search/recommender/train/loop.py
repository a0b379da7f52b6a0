"""The training loop: batches scored over the catalog, the registered loss terms, AdamW with
warm-up + cosine decay, clipping, early stopping, the NaN guard."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from moo_search.errors import TrialFailed
from moo_search.recommender.config import LossConfig, TrainConfig
from moo_search.recommender.model.recommender import NO_SCORE, Recommender
from moo_search.recommender.model.tokens import TokenTable
from moo_search.recommender.train import losses as L
from moo_search.recommender.train._setup import (
    EarlyStopping,
    autocast_for,
    make_optimizer,
)
from moo_search.recommender.train.terms import Batch, PairData, loss_terms

__all__ = ["TrainData", "TrainHistory", "train"]

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
    neighbours: np.ndarray | None = None  # (I, n) nearest backbone neighbours (content term)
    ratings: np.ndarray | None = None  # (n,) each pair's rating (the satisfaction term)


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
    ctr_fit_logloss: float | None = None  # the conversion head's log-loss after its fit
    new_item_neighbours: int | None = None  # chosen on validation (fusion.new_item_neighbours)
    task_fit: dict[str, float] = field(default_factory=dict)  # the task heads' train losses

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
            "new_item_neighbours": self.new_item_neighbours,
            "task_fit": self.task_fit,
        }


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
    checkpoints: Sequence[int] = (),
    on_checkpoint: Callable[[int], None] | None = None,
) -> TrainHistory:
    """Fine-tune ``model`` in place; on early stopping the best weights are restored.
    ``on_checkpoint(step)`` is called after each step in ``checkpoints`` (rungs of
    multi-objective early stopping; it may raise to stop the trial).

    Raises:
        TrialFailed: the loss became NaN/inf or exploded (> 50x its first value).
    """
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    w = L.normalised_weights(**loss_cfg.weights.model_dump())
    autocast, scaler, opt, sched = _optimisation(model, train_cfg, device)
    hist = TrainHistory()
    pairs = _pairs_on(data, device)
    if not model.fixed_cf:
        _warm_up_ids(model, pairs.users, pairs.items, train_cfg, id_warmup_epochs, gen)
    stopper = EarlyStopping(train_cfg.early_stop_metric, train_cfg.patience)
    first_loss, item_cache, bar = None, None, _progress(train_cfg)
    model.train()
    for step in range(train_cfg.max_steps):
        if model.alpha > 0 and (item_cache is None or step % train_cfg.refresh_every == 0):
            item_cache = model.encode_table(data.item_tokens, device, autocast=autocast)
            model.train()
        idx = rng.integers(0, len(data.users), train_cfg.batch_size)
        with autocast() if autocast else contextlib.nullcontext():
            batch = _batch(model, data, pairs, idx, item_cache, hist, loss_cfg, train_cfg, gen)
            terms = loss_terms(batch, w)
            loss: torch.Tensor = sum(w[k] * v for k, v in terms.items())  # type: ignore[assignment]
        value = float(loss.detach())
        first_loss = _check_loss(value, step, first_loss, train_cfg.lr, terms)
        _optimizer_step(loss, opt, sched, scaler, train_cfg.grad_clip)
        _record(hist, bar, step, value, terms)
        if on_checkpoint is not None and step + 1 in checkpoints:
            on_checkpoint(step + 1)
            model.train()
        due = (step + 1) % train_cfg.eval_every == 0 and step < train_cfg.max_steps - 1
        if evaluate is not None and due and _validate(model, evaluate, stopper, hist, step):
            hist.stopped_early = True
            break
    if bar is not None:
        bar.close()
    _keep_best(model, evaluate, stopper, hist)
    model.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def _optimisation(model: Recommender, train_cfg: TrainConfig, device: torch.device) -> Any:
    """(autocast, grad scaler or None, optimizer, schedule) for ``train.amp`` on ``device``."""
    autocast, needs_scaler = autocast_for(device, train_cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    opt, sched = make_optimizer(model, train_cfg)
    return autocast, scaler, opt, sched


def _record(hist: TrainHistory, bar: Any, step: int, value: float, terms: dict[str, Any]) -> None:
    hist.steps.append(step)
    hist.loss.append(value)
    hist.terms.append({k: float(v.detach()) for k, v in terms.items()})
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")


def _validate(
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


def _keep_best(
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


def _pairs_on(data: TrainData, device: torch.device) -> PairData:
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
        item_tokens=data.item_tokens,
        neighbours=t(data.neighbours),
        ratings=t(data.ratings),
    )


def _batch(
    model: Recommender,
    data: TrainData,
    pairs: PairData,
    idx: np.ndarray,
    item_cache: torch.Tensor | None,
    hist: TrainHistory,
    loss_cfg: LossConfig,
    train_cfg: TrainConfig,
    gen: torch.Generator,
) -> Batch:
    """Scores of the batch's users over the catalog: collaborative rows, and semantic rows
    from the cached item embeddings with fresh, grad-carrying in-batch columns."""
    device = pairs.users.device
    u, i = pairs.users[idx], pairs.items[idx]
    r_full = model.collaborative(u)
    s_full: torch.Tensor | None = None
    if model.alpha > 0:
        assert item_cache is not None
        users, items = data.users[idx], data.items[idx]
        hist.train_tokens += data.user_tokens.tokens(users) + data.item_tokens.tokens(items)
        eu = model.encode_rows(data.user_tokens, users, device)
        ei = model.encode_rows(data.item_tokens, items, device)
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
    )


def _check_loss(
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


def _optimizer_step(
    loss: torch.Tensor, opt: Any, sched: Any, scaler: Any | None, grad_clip: float
) -> None:
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    sched.step()


def _warm_up_ids(
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
