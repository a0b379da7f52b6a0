"""The language-model recommender: a text tower fused with a collaborative backbone, and a
CTR head.

Scores (DESIGN.md, "The default trial"):
    s(u, i) = cos(enc(user text), enc(item text))                     semantic
    r(u, i) = x_u W (EASE / ItemKNN, closed form) or <p_u, q_i> + b_i  collaborative
    f(u, i) = a_i * z_u(s) + (1 - a_i) * z_u(r)                         fused
    a_i = alpha for head items, min(1, alpha * tail_weight) for tail items
    p(click | u, i) = sigmoid(w . [lr_u, lr_i, log pop_i, z_u(r)_i, z_u(s)_i] + b)   CTR

z_u standardises a user's scores over the catalog (mean 0, unit variance), so alpha weighs
the two towers on one scale whatever the backbone, and alpha = 0 ranks exactly as the
backbone does (a per-user increasing affine map keeps every list).

Under the item-cold protocol the catalog has new items that no interaction reaches: z_u takes
its mean and deviation over the warm items only, a new item's fused score is its text score
alone, f(u, i) = z_u(c)_i with c the user's history scored by text (:meth:`Recommender.fuse`),
and training never sees a new item, not even as a negative. Without a text tower a new item
cannot be scored and ranks last.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from moo_search.recommender.model.cf_towers import is_learned, tower_matrix
from moo_search.recommender.model.ctr import CTR_FEATURES, CTRHead
from moo_search.recommender.model.layer_cache import FrozenPrefix
from moo_search.recommender.model.pooling import pool
from moo_search.recommender.model.task_towers import TaskTowers, drop_item_counts
from moo_search.recommender.model.tasks import TaskHeads
from moo_search.recommender.model.tokens import TokenTable
from moo_search.recommender.zscore import standardise

if TYPE_CHECKING:
    from moo_search.recommender.model.assemble import TowerParts

__all__ = ["Recommender"]


NO_SCORE = -1.0e4
"""The fused score of an item the model cannot score (a new item without a text tower)."""


class Recommender(nn.Module):
    """The text tower fused with the collaborative backbone, and the task heads (see the
    module); built by :func:`assemble`."""

    def __init__(
        self,
        encoder: Any,
        parts: TowerParts,
        *,
        alpha: float,
        temperature: float,
        pooling: str,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.prefix: FrozenPrefix | None = None  # frozen lower layers, run once per text
        self.encoded_tokens = 0  # tokens encoded without grad (catalog and user tables)
        self.backbone_info: dict[str, Any] = {}  # name, params, sha256 (set by the trial)
        self.alpha = alpha
        self.pooling = pooling
        self.left_padded = False  # the family pads its batches on the left (set by assemble)
        n_users, n_items = parts.n_users, parts.n_items
        # softmax temperature over fused (standardised) scores, learned from its start value
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.ctr = CTRHead(parts.like_logits[2])  # the conversion task's output
        # the click and satisfaction outputs (moo_search.recommender.model.tasks)
        self.tasks = TaskHeads(parts.rating_offsets, n_users, n_items)
        # what the towers know of a pair, per task (trained with the towers; model.task_towers)
        with torch.random.fork_rng(devices=[]):  # their init draws nothing others draw
            self.task_towers = TaskTowers(_text_dim(encoder) if alpha > 0 else 0)
        unseen = float(np.min(parts.item_logpop)) if len(parts.item_logpop) else 0.0
        self.task_towers.new_item_logpop.fill_(unseen)  # type: ignore[operator]
        self.linear_tasks = False  # loss.task_towers false: no towers, old features (assemble)
        self._catalog_buffers(parts, alpha)
        # items training may see (None: all); set by hold_out() under the item-cold protocol
        self.warm: torch.Tensor | None = None
        if parts.cf_tower is None:
            raise ValueError("the recommender needs its collaborative tower (set by assemble)")
        # the collaborative backbone, closed form or learned (moo_search.recommender.model.cf_towers)
        self.cf_tower: nn.Module = parts.cf_tower
        self.fixed_cf = not is_learned(self.cf_tower)

    def _catalog_buffers(self, parts: TowerParts, alpha: float) -> None:
        """Popularity, each item's fusion weight, the like-rate logits."""
        n_users, n_items = parts.n_users, parts.n_items
        user_like, item_like, global_like = parts.like_logits
        self.register_buffer("logpop", torch.as_tensor(parts.item_logpop, dtype=torch.float32))
        # the fusion weight of each item (alpha, more for tail items: fusion.tail_weight)
        a = (
            np.full(n_items, alpha, dtype=np.float32)
            if parts.item_alpha is None
            else parts.item_alpha
        )
        self.register_buffer("item_alpha", torch.as_tensor(a, dtype=torch.float32))
        self.register_buffer(
            "user_like", torch.as_tensor(_or_zeros(user_like, n_users), dtype=torch.float32)
        )
        self.register_buffer(
            "item_like", torch.as_tensor(_or_zeros(item_like, n_items), dtype=torch.float32)
        )
        # a user or item with no train exposure has the smoothed like-rate of the global rate
        self.register_buffer("global_like", torch.tensor(float(global_like)))

    def hold_out(self, warm: np.ndarray | None) -> None:
        """Mark the items without interaction data (``warm`` False): scored from text only,
        never trained on. None or all-True: every item is warm."""
        self.warm = None if warm is None or bool(np.all(warm)) else torch.as_tensor(warm)

    # ---- parameters -------------------------------------------------------------------

    def adapter_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.encoder.parameters() if p.requires_grad)

    def learned_cf_parameters(self) -> list[torch.Tensor]:
        """The learned backbone's parameters (none for a closed form)."""
        return [] if self.fixed_cf else list(self.cf_tower.parameters())

    def head_parameters(self) -> list[torch.Tensor]:
        return [
            *self.learned_cf_parameters(),
            self.log_scale,
            *self.ctr.parameters(),
            *self.tasks.parameters(),  # the click and satisfaction terms train their heads
            *self.task_towers.parameters(),
        ]

    def head_state(self) -> dict[str, torch.Tensor]:
        """Everything but the encoder and a closed-form backbone: a learned backbone, the task
        heads, like-rates, popularity (a closed-form backbone is the study's and is shipped
        once per export)."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("encoder.")
        }

    # ---- towers -----------------------------------------------------------------------

    def use_prefix(self, prefix: FrozenPrefix | None) -> None:
        """Run the frozen lower layers through ``prefix`` (always in eval mode; from its
        cache where a table is attached)."""
        self.prefix = prefix
        if prefix is not None:
            prefix.eval_()

    def train(self, mode: bool = True) -> Recommender:
        super().train(mode)
        if self.prefix is not None:
            self.prefix.eval_()  # frozen layers add no dropout noise, cached or not
        return self

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit-norm pooled embeddings of token ids (B, L) with their mask."""
        if self.prefix is not None:
            out = self.prefix.top(self.prefix.bottom(ids, mask), mask)
        else:
            kwargs = {}
            if self.left_padded:  # real tokens keep the positions they have unpadded
                kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0)
            out = self.encoder(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
        return self._pool(out, mask)

    def encode_rows(self, table: TokenTable, idx: np.ndarray, device: torch.device) -> torch.Tensor:
        """Embeddings of rows ``idx`` of ``table``; from the frozen-layer cache when the
        table is attached to :attr:`prefix`."""
        ids, mask = table.batch(idx, left=self.left_padded)
        mask = mask.to(device)
        states = self.prefix.states(table) if self.prefix is not None else None
        if states is None:
            return self.encode(ids.to(device), mask)
        assert self.prefix is not None
        h = states[torch.as_tensor(idx, device=states.device), : ids.shape[1]]
        return self._pool(self.prefix.top(h, mask), mask)

    def _pool(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(pool(out, mask, self.pooling).float(), dim=-1)

    @torch.no_grad()
    def encode_table(
        self,
        table: TokenTable,
        device: torch.device,
        batch_size: int = 256,
        autocast: Any = None,
        rows: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Embeddings of every text in ``table``: no grad, length-bucketed batches; of the
        ``rows`` only where given (the other rows zero)."""
        was_training = self.training
        self.eval()
        dim = self._dim(table, device)
        out = (torch.empty if rows is None else torch.zeros)(len(table), dim, device=device)
        for idx in table.length_buckets(batch_size):
            if rows is not None:
                idx = idx[np.isin(idx, rows)]
                if not len(idx):
                    continue
            with autocast() if autocast else contextlib.nullcontext():
                out[torch.from_numpy(idx).to(device)] = self.encode_rows(table, idx, device)
            self.encoded_tokens += table.tokens(idx)
        self.train(was_training)
        return out

    def _dim(self, table: TokenTable, device: torch.device) -> int:
        hidden = getattr(getattr(self.encoder, "config", None), "hidden_size", None)
        if hidden is None:
            ids, mask = table.batch(np.array([0]))
            hidden = self.encode(ids.to(device), mask.to(device)).shape[-1]
        return int(hidden)

    # ---- scores -----------------------------------------------------------------------

    def collaborative(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Raw backbone scores: full catalog rows, or one score per (user, item) pair."""
        out: torch.Tensor = self.cf_tower(users, items)
        return out

    @property
    def pairwise_z(self) -> bool:
        """Whether per-pair z-scores come without catalog rows (:meth:`collaborative_pair_z`):
        the backbone's rows are not kept, a large catalog."""
        return getattr(self.cf_tower, "rows", None) is not None

    def collaborative_pair_z(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """Per-user z-scores of the backbone at (user, item) pairs without catalog rows, where
        the tower can give them (a closed form whose table is not kept); else None."""
        pair_z = getattr(self.cf_tower, "pair_z", None)
        return None if pair_z is None else pair_z(users, items, self.warm)  # type: ignore[no-any-return]

    def cf_matrix(self) -> Any:
        """The closed-form W (a numpy array or SparseWeights); None for a learned backbone."""
        return tower_matrix(self.cf_tower)

    def collaborative_from_history(self, history: torch.Tensor) -> torch.Tensor:
        """Backbone scores of a new user from the item indices of their history."""
        scores: torch.Tensor = self.cf_tower.from_history(history)  # type: ignore[operator]
        return scores

    def fuse(
        self,
        semantic: torch.Tensor | None,
        collaborative: torch.Tensor,
        item_alpha: torch.Tensor | None = None,
        new_item_text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """a_i * z(s) + (1 - a_i) * z(r) over full catalog rows (z: per-user z-score; a_i the
        item's fusion weight: alpha, or more for tail items; ``item_alpha`` overrides the
        model's own, e.g. to serve the trained tower at other weights).

        New items (not :attr:`warm`) score z(c), c = ``new_item_text`` (the user's history
        scored by text; ``semantic`` when not given), or :data:`NO_SCORE` without text."""
        warm = self.warm
        if warm is not None:
            warm = warm.to(collaborative.device)
        r = standardise(collaborative.float(), warm)
        if semantic is None or self.alpha <= 0:
            return r if warm is None else r.masked_fill(~warm, NO_SCORE)
        a: torch.Tensor = self.item_alpha if item_alpha is None else item_alpha  # type: ignore[assignment]
        s = standardise(semantic.float(), warm)
        fused = a * s + (1.0 - a) * r
        if warm is None:
            return fused
        new = s if new_item_text is None else standardise(new_item_text.float(), warm)
        return torch.where(warm, fused, new)

    def logits(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused scores as softmax logits (a learned inverse temperature)."""
        return fused * self.log_scale.exp()

    def ctr_features(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        r_z: torch.Tensor,
        s_z: torch.Tensor | None,
        *,
        user_like: torch.Tensor | None = None,
        item_like: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The CTR head's inputs per pair; like-rates default to the full-train ones (pass
        leave-one-out ones when fitting on train pairs)."""
        ul: torch.Tensor = self.user_like  # type: ignore[assignment]
        il: torch.Tensor = self.item_like  # type: ignore[assignment]
        logpop: torch.Tensor = self.logpop  # type: ignore[assignment]
        cols = [
            ul[users] if user_like is None else user_like,
            il[items] if item_like is None else item_like,
            logpop[items],
            r_z,
            s_z if s_z is not None and self.alpha > 0 else torch.zeros_like(r_z),
        ]
        return torch.stack([c.float() for c in cols], -1)

    def ctr_logit(self, features: torch.Tensor) -> torch.Tensor:
        """The conversion output from task features (it reads the first five)."""
        return self.ctr(features[..., : len(CTR_FEATURES)])

    def task_features(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        r_z: torch.Tensor,
        s_z: torch.Tensor | None,
        *,
        user_like: torch.Tensor | None = None,
        item_like: torch.Tensor | None = None,
        user_offset: torch.Tensor | None = None,
        item_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every task head's inputs per pair (:data:`~moo_search.recommender.model.tasks.TASK_FEATURES`);
        pass leave-one-out like-rates and rating offsets when fitting on train pairs."""
        t = self.tasks
        uo: torch.Tensor = t.user_offset  # type: ignore[assignment]
        io: torch.Tensor = t.item_offset  # type: ignore[assignment]
        act: torch.Tensor = t.user_activity  # type: ignore[assignment]
        extra = [
            uo[users] if user_offset is None else user_offset,
            io[items] if item_offset is None else item_offset,
            act[users],
        ]
        base = self.ctr_features(users, items, r_z, s_z, user_like=user_like, item_like=item_like)
        return torch.cat([base, torch.stack([c.float() for c in extra], -1)], -1)

    def new_item_counts(self) -> torch.Tensor:
        """The item-side count features of an item without interactions: the global like-rate
        logit, the popularity of an unseen item, a zero rating offset."""
        unseen: torch.Tensor = self.task_towers.new_item_logpop  # type: ignore[assignment]
        glob: torch.Tensor = self.global_like  # type: ignore[assignment]
        return torch.stack([glob.float(), unseen.float(), glob.new_zeros(())])

    def task_outputs(
        self,
        features: torch.Tensor,
        user_emb: torch.Tensor | None,
        item_emb: torch.Tensor | None,
        *,
        train: tuple[float, torch.Generator] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Each task's prediction (click and conversion logits, the rating) for pairs with
        ``features`` (:meth:`task_features`) and text embeddings: the task's linear head plus
        its :class:`TaskTowers` output. ``train`` (item-count dropout rate, generator): in a
        loss term, where item counts are dropped at that rate and the click head does not read
        the backbone's score: on a train pair it is in-sample (EASE was fit on the pair), which
        tells an interaction from a non-interaction far better than on test (a click head fit
        on train pairs: test AUC 0.73 against 0.79 without the score, ML-100K); among
        interactions (conversion, satisfaction) it is kept, which fit better with it."""
        if self.linear_tasks:  # loss.task_towers false: the linear heads, as before them
            return {
                "click": self.tasks.click_logit(features),
                "conversion": self.ctr_logit(features),
                "satisfaction": self.tasks.rating(features),
            }
        click = features
        if train is not None:
            features = drop_item_counts(features, self.new_item_counts(), *train)
            click = features.clone()
            click[:, 3] = 0.0  # the collaborative z-score (TASK_FEATURES[3])
        deep = self.task_towers(features, user_emb, item_emb)
        return {
            "click": self.tasks.click_logit(click) + deep[:, 0],
            "conversion": self.ctr_logit(features) + deep[:, 1],
            "satisfaction": self.tasks.rating(features) + deep[:, 2],
        }


def _text_dim(encoder: Any) -> int:
    """The width of the text tower's pooled embeddings."""
    config = getattr(encoder, "config", None)
    for name in ("hidden_size", "d_model", "n_embd"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return int(encoder.get_input_embeddings().embedding_dim)


def _or_zeros(x: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32) if x is None else np.asarray(x, dtype=np.float32)
