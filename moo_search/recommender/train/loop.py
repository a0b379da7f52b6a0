"""The training loop (:class:`Trainer`, a step at a time; :func:`train` runs one): batches scored over the catalog, the registered loss terms, AdamW with
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

from moo_search.recommender.config import LossConfig, TrainConfig
from moo_search.recommender.model.recommender import Recommender
from moo_search.recommender.model.tokens import TokenTable
from moo_search.recommender.train import losses as L
from moo_search.recommender.train._setup import EarlyStopping
from moo_search.recommender.train._steps import (
    batch_scores,
    check_loss,
    keep_best,
    optimisation,
    optimizer_step,
    pairs_on,
    progress_bar,
    record_step,
    validate_at,
    warm_up_ids,
)
from moo_search.recommender.train.terms import loss_terms

__all__ = ["TrainData", "TrainHistory", "TrainOptions", "Trainer", "train"]

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
    offset_user: np.ndarray | None = None  # (n,) leave-one-out rating offsets of each pair
    offset_item: np.ndarray | None = None
    neighbours: np.ndarray | None = None  # (I, n) nearest backbone neighbours (content term)
    hard_negatives: np.ndarray | None = None  # (I, pool) text-near, backbone-far (content term)
    ratings: np.ndarray | None = None  # (n,) each pair's rating (the satisfaction term)


@dataclass
class TrainHistory:
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    task_warmup_steps: int = 0  # the task heads' warm-up (train.task_warmup_steps)
    evals: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    stopped_early: bool = False
    train_tokens: int = 0
    seconds: float = 0.0
    ctr_fit_logloss: float | None = None  # the conversion head's log-loss after its fit
    new_item_neighbours: int | None = None  # chosen on validation (fusion.new_item_neighbours)
    new_items: dict[str, Any] = field(default_factory=dict)  # the new-item knobs chosen on val
    task_fit: dict[str, float] = field(default_factory=dict)  # the task heads' train losses

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "loss": self.loss,
            "terms": self.terms,
            "task_warmup_steps": self.task_warmup_steps,
            "evals": self.evals,
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "train_tokens": self.train_tokens,
            "seconds": self.seconds,
            "ctr_fit_logloss": self.ctr_fit_logloss,
            "new_item_neighbours": self.new_item_neighbours,
            "new_items": self.new_items,
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
    options = TrainOptions(
        train_cfg=train_cfg,
        loss_cfg=loss_cfg,
        seed=seed,
        device=device,
        evaluate=evaluate,
        id_warmup_epochs=id_warmup_epochs,
        checkpoints=checkpoints,
        on_checkpoint=on_checkpoint,
    )
    trainer = Trainer(model, data, options)
    while not trainer.done:
        trainer.draw()
        loss = trainer.loss()
        trainer.scaled(loss).backward()
        trainer.update()
    return trainer.finish()


@dataclass(kw_only=True)
class TrainOptions:
    """How a :class:`Trainer` trains (:func:`train`'s keywords)."""

    train_cfg: TrainConfig
    loss_cfg: LossConfig
    seed: int
    device: torch.device
    evaluate: Callable[[], dict[str, float]] | None = None
    id_warmup_epochs: int = 3
    checkpoints: Sequence[int] = ()
    on_checkpoint: Callable[[int], None] | None = None


class Trainer:
    """One fine-tune's training, a step at a time: :meth:`draw` the batch's rows, compute its
    :meth:`loss` (from text embeddings given by the caller, or encoded here), backward, then
    :meth:`update`. :func:`train` runs one; :mod:`.fused` runs several in lock-step, their
    texts through one pass of the shared frozen base. Everything else is the trial's own:
    its generators, optimizer and schedule, loss weights, early stopping and rungs."""

    def __init__(self, model: Recommender, data: TrainData, options: TrainOptions) -> None:
        self.t0 = time.perf_counter()
        self.model, self.data, self.options = model, data, options
        train_cfg, device = options.train_cfg, options.device
        self.device, self.train_cfg, self.loss_cfg = device, train_cfg, options.loss_cfg
        self.evaluate = options.evaluate
        self.checkpoints, self.on_checkpoint = options.checkpoints, options.on_checkpoint
        self.gen = torch.Generator().manual_seed(options.seed)
        self.rng = np.random.default_rng(options.seed)
        self.w = L.normalised_weights(**options.loss_cfg.weights.model_dump())
        self.autocast, self.scaler, self.opt, self.sched = optimisation(model, train_cfg, device)
        self.hist = TrainHistory()
        self.pairs = pairs_on(data, device)
        if not model.fixed_cf:
            warm_up_ids(
                model,
                self.pairs.users,
                self.pairs.items,
                train_cfg,
                options.id_warmup_epochs,
                self.gen,
            )
        self.stopper = EarlyStopping(train_cfg.early_stop_metric, train_cfg.patience)
        self.first_loss: float | None = None
        self.item_cache: torch.Tensor | None = None
        self.bar = progress_bar(train_cfg)
        self.step, self.done = 0, train_cfg.max_steps <= 0
        self.idx = np.zeros(0, dtype=np.int64)
        self._terms: dict[str, torch.Tensor] = {}
        self._value = math.nan
        model.train()

    @property
    def reads_text(self) -> bool:
        """Whether its batches encode texts (a text tower in the fusion)."""
        return self.model.alpha > 0

    def draw(self) -> np.ndarray:
        """The step's train-pair rows (the catalog's embeddings refreshed when due)."""
        step, cfg = self.step, self.train_cfg
        fresh = self.reads_text and (self.item_cache is None or step % cfg.refresh_every == 0)
        if fresh:
            self.item_cache = self.model.encode_table(
                self.data.item_tokens, self.device, autocast=self.autocast
            )
            self.model.train()
        if step == cfg.content_steps:
            self._warm_up_tasks(self.item_cache if fresh else None)
        self.idx = self.rng.integers(0, len(self.data.users), cfg.batch_size)
        self.opt.zero_grad(set_to_none=True)
        return self.idx

    def _warm_up_tasks(self, item_emb: torch.Tensor | None) -> None:
        """The task heads fit over the tower's embeddings before the task terms join
        (:mod:`.task_warmup`; ``item_emb``: the catalog's, when encoded at this step); its
        seconds are in the training time."""
        from moo_search.recommender.train.task_warmup import warm_up_tasks

        self.hist.task_warmup_steps = warm_up_tasks(
            self.model,
            self.data,
            self.pairs,
            self.loss_cfg,
            self.train_cfg,
            self.device,
            self.autocast,
            self.options.seed,
            item_emb=item_emb,
        )

    def text_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(user rows, item rows) of the drawn batch in the token tables."""
        return self.data.users[self.idx], self.data.items[self.idx]

    def loss(self, encoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The drawn batch's loss; ``encoded`` the (users, items) text embeddings when the
        caller encoded them. Raises :class:`TrialFailed` on a NaN or exploding loss."""
        with self.autocast() if self.autocast else contextlib.nullcontext():
            batch = batch_scores(
                self.model,
                self.data,
                self.pairs,
                self.idx,
                self.item_cache,
                self.hist,
                self.loss_cfg,
                self.train_cfg,
                self.gen,
                encoded=encoded,
            )
            w = self.weights()
            terms = loss_terms(batch, w)
            loss: torch.Tensor = sum(w[k] * v for k, v in terms.items())  # type: ignore[assignment]
        if self.step == self.train_cfg.content_steps > 0:
            self.first_loss = None  # the joint phase's loss has another yardstick
        self._value = float(loss.detach())
        self._terms = terms
        self.first_loss = check_loss(
            self._value, self.step, self.first_loss, self.train_cfg.lr, terms
        )
        return loss

    def weights(self) -> dict[str, float]:
        """The loss weights of this step: the content term alone in the content phase
        (``train.content_steps``; none without a text tower), then ``loss.weights``."""
        phase = self.step < self.train_cfg.content_steps and self.model.alpha > 0
        return {"content": 1.0} if phase else self.w

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """What to call backward on (the loss, scaled under fp16)."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def update(self) -> None:
        """Clip, step the optimizer and schedule, record; the rung hook and validation when
        due (both may end training: a raise from the hook, or early stopping)."""
        optimizer_step(self.opt, self.sched, self.scaler, self.train_cfg.grad_clip)
        step, cfg = self.step, self.train_cfg
        record_step(self.hist, self.bar, step, self._value, self._terms)
        self.step += 1
        self.done = self.step >= cfg.max_steps
        if self.on_checkpoint is not None and step + 1 in self.checkpoints:
            self.on_checkpoint(step + 1)
            self.model.train()
        due = (step + 1) % cfg.eval_every == 0 and step < cfg.max_steps - 1
        stop = (
            self.evaluate is not None
            and due
            and validate_at(self.model, self.evaluate, self.stopper, self.hist, step)
        )
        if stop:
            self.hist.stopped_early = self.done = True

    def finish(self) -> TrainHistory:
        """The best weights kept, the model in eval mode; its history."""
        if self.bar is not None:
            self.bar.close()
        keep_best(self.model, self.evaluate, self.stopper, self.hist)
        self.model.eval()
        self.hist.seconds = time.perf_counter() - self.t0  # (a fused run apportions it)
        return self.hist
