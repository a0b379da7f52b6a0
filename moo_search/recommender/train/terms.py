"""The loss terms of L = w_rank L_rank + w_conv L_conv + w_click L_click + w_sat L_sat +
w_div L_div + w_nov L_nov + w_content L_content: one :class:`LossTerm` registered per weight
of ``loss.weights`` (same keys), each computed from a :class:`Batch`. The built-in terms
register exactly as a plugin's::

    LOSS_TERMS.register("mine", LossTerm(fn=my_term, default_weight=0.0, description="..."))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from moo_search.recommender.model.recommender import Recommender
from moo_search.recommender.registries import LOSS_TERMS
from moo_search.recommender.train import losses as L
from moo_search.recommender.zscore import standardise

__all__ = ["Batch", "LossTerm", "PairData", "loss_terms"]


@dataclass
class PairData:
    """Every train pair on the device (what terms sample extra pairs or labels from)."""

    users: torch.Tensor
    items: torch.Tensor
    clicks: torch.Tensor
    features: torch.Tensor  # (I, d) unit-norm item features
    self_information: torch.Tensor  # (I,) -log2 pop
    like_user: torch.Tensor | None  # leave-one-out like-rate logits per pair
    like_item: torch.Tensor | None
    offset_user: torch.Tensor | None = None  # leave-one-out rating offsets per pair
    offset_item: torch.Tensor | None = None
    item_tokens: Any = None  # the catalog's TokenTable (terms that encode items)
    neighbours: torch.Tensor | None = None  # (I, n) each item's nearest backbone neighbours
    hard_negatives: torch.Tensor | None = None  # (I, pool) text-near, backbone-far items
    ratings: torch.Tensor | None = None  # (n,) each train pair's rating (satisfaction)


@dataclass(frozen=True, kw_only=True)
class LossTerm:
    """A loss term: ``fn(batch) -> scalar tensor``, its weight where the spec sets none
    (``loss.weights.<name>``; weights are normalised to sum to 1), what it does (shown in the
    spec reference)."""

    fn: Callable[[Batch], torch.Tensor]
    default_weight: float = 0.0
    description: str = ""
    adapted_from: Any = None  # the bare function a plugin registered, wrapped (compat)

    @classmethod
    def of(cls, fn: Any) -> LossTerm:
        """A bare ``fn(batch)`` registered as before loss terms were records: weight 0 unless
        the spec sets one."""
        return cls(fn=fn, description=(fn.__doc__ or "").strip(), adapted_from=fn)


@dataclass
class Batch:
    """One step's batch: scores over the full catalog for its users, and the context."""

    model: Recommender
    fused: torch.Tensor  # (B, I) fused scores
    r_full: torch.Tensor  # (B, I) raw collaborative scores
    s_full: torch.Tensor | None  # (B, I) semantic scores (None without a text tower)
    u: torch.Tensor  # (B,) users
    i: torch.Tensor  # (B,) their positive items
    idx: np.ndarray  # (B,) indices into the train pairs
    loss_cfg: Any
    train_cfg: Any
    pairs: PairData
    gen: torch.Generator
    user_emb: torch.Tensor | None = None  # (B, d) the batch users' text embeddings (grad)
    item_emb: torch.Tensor | None = None  # (B, d) their positive items' (grad)
    item_cache: torch.Tensor | None = None  # (I, d) every item's, from the last refresh

    def task_outputs(
        self, features: torch.Tensor, items: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The task predictions of the batch's pairs: one per batch user (its positive, whose
        fresh embedding carries grad), or ``items`` (B, n) per user, all embedded from the item
        cache (so that a positive does not differ from a negative by being fresh)."""
        eu = ei = None
        if self.user_emb is not None and self.item_emb is not None:
            n = 1 if items is None else items.shape[1]
            eu = self.user_emb.repeat_interleave(n, 0)
            if items is None:
                ei = self.item_emb
            elif self.item_cache is not None:
                ei = self.item_cache[items.reshape(-1)].to(eu.dtype)
            else:
                eu = None
        rate = float(self.loss_cfg.task_item_dropout)
        return self.model.task_outputs(features, eu, ei, train=(rate, self.gen))

    def leave_one_out(self) -> dict[str, torch.Tensor | None]:
        """The batch pairs' leave-one-out like-rates and rating offsets (task features)."""
        p, t = self.pairs, torch.as_tensor(self.idx, device=self.fused.device)
        cols = (
            ("user_like", p.like_user),
            ("item_like", p.like_item),
            ("user_offset", p.offset_user),
            ("item_offset", p.offset_item),
        )
        return {k: None if v is None else v[t] for k, v in cols}

    @cached_property
    def probs(self) -> torch.Tensor:
        """The recommendation distribution at a fixed temperature: the diversity and novelty
        terms must move the ranking, not flatten the softmax."""
        return torch.softmax(self.fused * self.model.log_scale.detach().exp(), dim=-1)


def _ranking(b: Batch) -> torch.Tensor:
    logits = b.model.logits(b.fused)
    rank = (
        L.softmax_loss(logits, b.i)
        if b.loss_cfg.ranking == "softmax"
        else L.bpr_loss(logits, b.i, b.gen)
    )
    if not b.model.fixed_cf:
        # extra ID-only pairs: cheap, they keep the learned collaborative tower learning
        p = b.pairs
        j = torch.randint(0, len(p.users), (b.train_cfg.id_batch_size,), generator=b.gen)
        j = j.to(p.users.device)
        rank = 0.5 * (rank + L.softmax_loss(b.model.collaborative(p.users[j]), p.items[j]))
    return rank


def _conversion(b: Batch) -> torch.Tensor:
    rows = torch.arange(len(b.idx), device=b.fused.device)
    t = torch.as_tensor(b.idx, device=b.fused.device)
    warm = None if b.model.warm is None else b.model.warm.to(b.fused.device)
    r_z = standardise(b.r_full.float(), warm)[rows, b.i]
    s_z = standardise(b.s_full.float(), warm)[rows, b.i] if b.s_full is not None else None
    p = b.pairs
    feats = b.model.task_features(b.u, b.i, r_z, s_z, **b.leave_one_out())
    logit = b.task_outputs(feats)["conversion"]
    return L.ctr_loss(logit.float(), p.clicks[t])


def _z_at(b: Batch, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch users' collaborative and semantic z-scores at ``items`` (B, n)."""
    warm = None if b.model.warm is None else b.model.warm.to(b.fused.device)
    r_z = standardise(b.r_full.float(), warm).gather(1, items)
    s_z = None
    if b.s_full is not None:
        s_z = standardise(b.s_full.float(), warm).gather(1, items)
    return r_z, s_z


def _click(b: Batch) -> torch.Tensor:
    """The click task: each batch interaction (label 1) against items drawn uniformly from
    the warm catalog (label 0; an interacted item drawn by chance is rare noise)."""
    device = b.fused.device
    n_neg = 4
    n_items = b.fused.shape[1]
    neg = torch.randint(0, n_items, (len(b.u), n_neg), generator=b.gen).to(device)
    if b.model.warm is not None:
        warm = torch.nonzero(b.model.warm.to(device)).squeeze(1)
        neg = warm[neg % len(warm)]
    items = torch.cat([b.i[:, None], neg], 1)
    r_z, s_z = _z_at(b, items)
    old = b.model.linear_tasks  # loss.task_towers false: the features as before the towers
    if not old and b.s_full is not None and b.user_emb is not None and b.item_cache is not None:
        # every column from the item cache: a fresh positive column would tell it apart
        mask = None if b.model.warm is None else b.model.warm.to(device)
        cached = b.user_emb.detach().float() @ b.item_cache.float().T
        s_z = standardise(cached, mask).gather(1, items)
    users = b.u[:, None].expand_as(items)
    feats = b.model.task_features(
        users.reshape(-1),
        items.reshape(-1),
        r_z.reshape(-1),
        None if s_z is None else s_z.reshape(-1),
    ).view(*items.shape, -1)
    # the positives' counts without the pair itself (a negative's hold no label of its own)
    loo = {} if old else b.leave_one_out()
    for col, key in ((0, "user_like"), (1, "item_like"), (5, "user_offset"), (6, "item_offset")):
        value = loo.get(key)
        if value is not None:
            feats[:, 0, col] = value.float()
    y = torch.zeros_like(r_z)
    y[:, 0] = 1.0
    logit = b.task_outputs(feats.reshape(-1, feats.shape[-1]), items)["click"]
    return torch.nn.functional.binary_cross_entropy_with_logits(logit.float(), y.reshape(-1))


def _satisfaction(b: Batch) -> torch.Tensor:
    """The satisfaction task: squared error of the predicted rating of each batch pair."""
    p = b.pairs
    if p.ratings is None:
        return b.fused.new_zeros(())
    t = torch.as_tensor(b.idx, device=b.fused.device)
    r_z, s_z = _z_at(b, b.i[:, None])
    loo = b.leave_one_out()
    if b.model.linear_tasks:  # loss.task_towers false: the offsets as before the towers
        loo["user_offset"] = loo["item_offset"] = None
    feats = b.model.task_features(b.u, b.i, r_z[:, 0], None if s_z is None else s_z[:, 0], **loo)
    rating = b.task_outputs(feats)["satisfaction"]
    return (rating.float() - p.ratings[t]).pow(2).mean()


def _diversity(b: Batch) -> torch.Tensor:
    return L.diversity_loss(b.probs, b.pairs.features)


def _novelty(b: Batch) -> torch.Tensor:
    return L.novelty_loss(b.probs, b.pairs.self_information)


def _content(b: Batch) -> torch.Tensor:
    """In-batch InfoNCE between the text embedding of each batch item and those of
    ``loss.content_positives`` of its nearest backbone neighbours (van den Oord et al. 2018;
    several positives as in Khosla et al. 2020, each against the batch with the item's other
    positives left out), plus ``loss.content_hard_negatives`` text-near, backbone-far items of
    each (:func:`~moo_search.recommender.prepare.item_hard_negatives`): the text tower learns to
    place an item near the items users take with it, which is what ranks a new item by its
    text."""
    p = b.pairs
    if b.s_full is None or p.neighbours is None or p.item_tokens is None:
        return b.fused.new_zeros(())  # no text tower, or no neighbours to align with
    device = b.fused.device
    nb, anchors, n_pos = p.neighbours, b.i, b.loss_cfg.content_positives
    if n_pos == 1:  # (one draw per anchor, as before several positives existed)
        pick = torch.randint(0, nb.shape[1], (len(anchors), 1), generator=b.gen)
    else:
        pick = torch.rand(len(anchors), nb.shape[1], generator=b.gen).argsort(1)[:, :n_pos]
    pos = nb[anchors[:, None], pick.to(device)]  # (B, P)
    ea = b.model.encode_rows(p.item_tokens, anchors.cpu().numpy(), device)
    cols = [pos.T.reshape(-1)]  # positive p of anchor a is column p * B + a
    hard = _hard_negatives(b, anchors)
    if hard is not None:
        cols.append(hard.reshape(-1))
    items = torch.cat(cols)
    ec = b.model.encode_rows(p.item_tokens, items.cpu().numpy(), device)
    logits = (ea @ ec.T).float() / b.loss_cfg.content_temperature  # (B, B*P + B*H)
    n_b = len(anchors)
    col_anchor = torch.arange(n_b, device=device).repeat(n_pos)  # whose positive a column is
    same = anchors[:, None] == anchors[col_anchor][None, :]  # an anchor's copies' positives
    masked = torch.zeros_like(logits, dtype=torch.bool)
    if hard is not None:  # a hard column that is the anchor or one of its neighbours is none
        hard_items = items[n_b * n_pos :]
        mine = (hard_items[None, :, None] == nb[anchors][:, None, :]).any(-1)
        masked[:, n_b * n_pos :] = mine | (hard_items[None, :] == anchors[:, None])
    ce = torch.nn.functional.cross_entropy
    target = torch.arange(n_b, device=device)
    loss = logits.new_zeros(())
    for k in range(n_pos):
        own = torch.zeros_like(same)
        own[:, k * n_b : (k + 1) * n_b] = torch.eye(n_b, dtype=torch.bool, device=device)
        drop = torch.cat([same & ~own, masked[:, n_b * n_pos :]], dim=1)
        lk = logits.masked_fill(drop, -1e4)
        pos_k = logits[:, k * n_b : (k + 1) * n_b].masked_fill(
            same[:, :n_b] & ~own[:, k * n_b : (k + 1) * n_b], -1e4
        )
        loss = loss + 0.5 * (ce(lk, target + k * n_b) + ce(pos_k.T, target))
    return loss / n_pos


def _hard_negatives(b: Batch, anchors: torch.Tensor) -> torch.Tensor | None:
    """(B, H) hard negatives drawn for each anchor from its pool, or None."""
    pool, h = b.pairs.hard_negatives, b.loss_cfg.content_hard_negatives
    if pool is None or h <= 0:
        return None
    h = min(h, pool.shape[1])
    pick = torch.rand(len(anchors), pool.shape[1], generator=b.gen).argsort(1)[:, :h]
    return pool[anchors[:, None], pick.to(pool.device)]


LOSS_TERMS.register(
    "ranking",
    LossTerm(
        fn=_ranking,
        default_weight=1.0,
        description="The ranking term (loss.ranking: softmax or BPR over the catalog).",
    ),
)
LOSS_TERMS.register(
    "conversion",
    LossTerm(
        fn=_conversion,
        default_weight=0.2,
        description="The conversion task: the like head's log loss on interactions.",
    ),
)
LOSS_TERMS.register(
    "click",
    LossTerm(
        fn=_click,
        default_weight=0.0,
        description="The click task: the click head's log loss on each batch's interactions against sampled non-interacted items (moo_search.recommender.model.tasks).",
    ),
)
LOSS_TERMS.register(
    "satisfaction",
    LossTerm(
        fn=_satisfaction,
        default_weight=0.0,
        description="The satisfaction task: the satisfaction head's squared error on the batch's ratings.",
    ),
)
LOSS_TERMS.register(
    "diversity",
    LossTerm(
        fn=_diversity,
        default_weight=0.0,
        description="Penalises genre overlap in the predicted item distribution.",
    ),
)
LOSS_TERMS.register(
    "novelty",
    LossTerm(
        fn=_novelty,
        default_weight=0.0,
        description="Rewards probability mass on unpopular items.",
    ),
)
LOSS_TERMS.register(
    "content",
    LossTerm(
        fn=_content,
        default_weight=0.0,
        description="Aligns item text embeddings with the backbone's item neighbours (in-batch InfoNCE), so items without interactions are placed by their text.",
    ),
)


def loss_terms(batch: Batch, weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Every registered term whose (normalised) weight is positive, in registry order; a term
    that raises or gives no scalar tensor fails the trial naming it."""
    from moo_search.errors import TrialFailed

    out = {}
    for name, term in LOSS_TERMS.items():
        if weights.get(name, 0) <= 0:
            continue
        try:
            value = term.fn(batch)
        except TrialFailed:
            raise
        except Exception as e:
            raise TrialFailed(
                f"loss term {name!r} (loss.weights.{name}) raised {type(e).__name__}: {e}"
            ) from e
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TrialFailed(
                f"loss term {name!r} (loss.weights.{name}) must return a scalar tensor, got "
                f"{type(value).__name__}{tuple(value.shape) if hasattr(value, 'shape') else ''}"
            )
        out[name] = value.reshape(())
    return out
