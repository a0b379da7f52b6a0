"""The task heads' warm-up: before the task terms join the fine-tune, the task heads
(:class:`~moo_search.recommender.model.task_towers.TaskTowers` and the linear heads) are fit for
``train.task_warmup_steps`` steps of 1024 train pairs over the tower's current embeddings, held
fixed. A fine-tune's own batches are far too few for a mixture of experts to learn from (45
steps of 32 pairs in ``studies/business.yaml``); after the warm-up the task terms train heads
and tower together from a head that already predicts. The tasks are weighed as in the loss
(``loss.weights``), so the shared experts serve the tasks the spec weighs most."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from moo_search.recommender.zscore import GramZ, standardise

__all__ = ["TASK_WEIGHTS", "warm_up_tasks"]

TASK_WEIGHTS = {"click": "click", "conversion": "conversion", "satisfaction": "satisfaction"}
"""Each task and the ``loss.weights`` key that trains it."""

BATCH = 1024
CLICK_NEGATIVES = 4
TABLE_CELLS = 50_000_000
"""Users x items up to which each user's catalog z-scores are computed once for the warm-up
(two float32 tables of at most 200 MB each) rather than for every batch: on MovieLens-100K a
batch of 1024 users is the whole table, so 200 steps computed it 200 times."""

PAIRWISE_USERS = 8192
"""Where the backbone's rows are not kept (a large catalog: ``Recommender.pairwise_z``), the
warm-up draws its pairs from this many users (a seeded sample), whose z-score statistics are
computed once, and z-scores each pair on its own; on 5 x 10^4 users x 10^5 items the per-batch
rows took ~20 s a step."""


def warm_up_tasks(
    model: Any,
    data: Any,
    pairs: Any,
    loss_cfg: Any,
    train_cfg: Any,
    device: torch.device,
    autocast: Any,
    seed: int,
    item_emb: torch.Tensor | None = None,
) -> int:
    """Fit the task heads on train pairs over fixed embeddings; the steps taken (0 when no
    task has a weight, the towers are off, or ``train.task_warmup_steps`` is 0).
    ``item_emb``: the catalog's embeddings where the caller has just encoded them."""
    weights = {t: loss_cfg.weights.of(k) for t, k in TASK_WEIGHTS.items()}
    weights = {t: w for t, w in weights.items() if w > 0}
    steps = int(train_cfg.task_warmup_steps)
    if steps <= 0 or not weights or model.linear_tasks:
        return 0
    total = sum(weights.values())
    pool = _pool(model, pairs, seed)
    user_emb = None
    if model.alpha > 0:
        if item_emb is None:
            item_emb = model.encode_table(data.item_tokens, device, autocast=autocast)
        users = None if pool is None else torch.unique(pairs.users[pool]).cpu().numpy()
        user_emb = model.encode_table(data.user_tokens, device, autocast=autocast, rows=users)
    else:
        item_emb = None
    params = [*model.task_towers.parameters(), *model.tasks.parameters(), *model.ctr.parameters()]
    opt = torch.optim.Adam(params, lr=train_cfg.id_lr)
    gen = torch.Generator().manual_seed(seed + 7919)  # apart from the fine-tune's draws
    warm = model.warm.to(device) if model.warm is not None else None
    candidates = (
        torch.nonzero(warm).squeeze(1)
        if warm is not None
        else torch.arange(int(model.logpop.shape[0]), device=device)
    )
    rate = float(loss_cfg.task_item_dropout)
    was_training = model.training
    model.train()
    gram = GramZ(item_emb, warm) if model.pairwise_z and item_emb is not None else None
    tables = None if model.pairwise_z else _tables(model, pairs, item_emb, user_emb, warm)
    emb = (item_emb, user_emb, tables, gram)
    for _ in range(steps):
        if pool is None:
            t = torch.randint(0, len(pairs.users), (BATCH,), generator=gen).to(device)
        else:
            t = pool[torch.randint(0, len(pool), (BATCH,), generator=gen)].to(device)
        losses = _losses(model, pairs, t, weights, emb, warm, candidates, (rate, gen))
        loss = sum(weights[k] / total * v for k, v in losses.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    model.train(was_training)
    return steps


def _pool(model: Any, pairs: Any, seed: int) -> torch.Tensor | None:
    """The pairs the warm-up draws from where they are z-scored one by one: those of
    :data:`PAIRWISE_USERS` users; None (every pair) otherwise."""
    if not model.pairwise_z:
        return None
    users = torch.unique(pairs.users.cpu())
    if len(users) <= PAIRWISE_USERS:
        return None
    gen = torch.Generator().manual_seed(seed + 104729)
    keep = users[torch.randperm(len(users), generator=gen)[:PAIRWISE_USERS]]
    return torch.nonzero(torch.isin(pairs.users.cpu(), keep)).squeeze(1)


def _tables(
    model: Any,
    pairs: Any,
    item_emb: torch.Tensor | None,
    user_emb: torch.Tensor | None,
    warm: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Every train user's catalog z-scores, collaborative and semantic, computed once (what
    each batch would compute for its users: the backbone and the embeddings are fixed during
    the warm-up); None where users x items exceeds :data:`TABLE_CELLS`."""
    n_users, n_items = int(pairs.users.max()) + 1, int(model.logpop.shape[0])
    if n_users * n_items > TABLE_CELLS:
        return None
    chunks = [
        _catalog_z(model, torch.arange(lo, min(lo + BATCH, n_users)), user_emb, item_emb, warm)
        for lo in range(0, n_users, BATCH)
    ]
    s_rows = [s for _, s in chunks if s is not None]
    return torch.cat([r for r, _ in chunks]), torch.cat(s_rows) if s_rows else None


def _catalog_z(
    model: Any,
    users: torch.Tensor,
    user_emb: torch.Tensor | None,
    item_emb: torch.Tensor | None,
    warm: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``users``' catalog z-scores: collaborative, and semantic (None without a text tower)."""
    users = users.to(model.logpop.device)
    s_rows = None
    if user_emb is not None and item_emb is not None:
        s_rows = standardise(user_emb[users].float() @ item_emb.float().T, warm)
    with torch.no_grad():
        r_rows = standardise(model.collaborative(users).float(), warm)
    return r_rows, s_rows


class _Rows:
    """A warm-up batch's users: their embeddings and catalog z-scores, and each pair's task
    outputs from them."""

    def __init__(
        self,
        model: Any,
        pairs: Any,
        t: torch.Tensor,
        emb: tuple[Any, Any, Any, Any],
        warm: torch.Tensor | None,
        dropout: tuple[float, torch.Generator],
    ) -> None:
        self.model, self.pairs, self.t, self.dropout = model, pairs, t, dropout
        self.item_emb, user_emb, tables, self.gram = emb
        self.u = pairs.users[t]
        self.eu = None if user_emb is None else user_emb[self.u]
        self.r_rows = self.s_rows = None
        if tables is not None:  # computed once (_tables)
            self.r_rows = tables[0][self.u]
            self.s_rows = None if tables[1] is None else tables[1][self.u]
        elif not model.pairwise_z:
            self.r_rows, self.s_rows = _catalog_z(model, self.u, user_emb, self.item_emb, warm)

    def outputs(self, items: torch.Tensor, loo: bool) -> dict[str, torch.Tensor]:
        """Task outputs of (the batch's users, ``items``); ``loo``: the items are the pairs'
        own (their counts without the pair)."""
        p, t = self.pairs, self.t
        at = items[:, None]
        if self.r_rows is None:  # z-scored pair by pair (PAIRWISE_USERS)
            with torch.no_grad():
                r_z = self.model.collaborative_pair_z(self.u, items)
            s_z = None if self.gram is None else self.gram.at(self.eu, items)
        else:
            r_z = self.r_rows.gather(1, at)[:, 0]
            s_z = None if self.s_rows is None else self.s_rows.gather(1, at)[:, 0]
        kw = {}
        if loo:
            cols = ("like_user", "like_item", "offset_user", "offset_item")
            names = ("user_like", "item_like", "user_offset", "item_offset")
            kw = {
                n: None if getattr(p, c) is None else getattr(p, c)[t] for n, c in zip(names, cols)
            }
        # the click head does not read r_z in training
        feats = self.model.task_features(self.u, items, r_z, s_z, **kw)
        ei = None if self.item_emb is None else self.item_emb[items]
        out: dict[str, torch.Tensor] = self.model.task_outputs(
            feats, self.eu, ei, train=self.dropout
        )
        return out


def _losses(
    model: Any,
    pairs: Any,
    t: torch.Tensor,
    weights: dict[str, float],
    emb: tuple[Any, Any, Any, Any],
    warm: torch.Tensor | None,
    candidates: torch.Tensor,
    dropout: tuple[float, torch.Generator],
) -> dict[str, torch.Tensor]:
    """Each weighted task's loss on train pairs ``t`` (the positive's counts left out);
    ``emb``: the (items, users) embeddings and the catalog z-score tables (or None);
    ``dropout``: item-count dropout's rate and generator."""
    rows = _Rows(model, pairs, t, emb, warm, dropout)
    pos = rows.outputs(pairs.items[t], True)
    out: dict[str, torch.Tensor] = {}
    if "conversion" in weights:
        out["conversion"] = F.binary_cross_entropy_with_logits(
            pos["conversion"].float(), pairs.clicks[t]
        )
    if "satisfaction" in weights and pairs.ratings is not None:
        out["satisfaction"] = (pos["satisfaction"].float() - pairs.ratings[t]).pow(2).mean()
    if "click" in weights:
        logits = [pos["click"].float()]
        for _ in range(CLICK_NEGATIVES):
            pick = torch.randint(0, len(candidates), (len(t),), generator=dropout[1])
            logits.append(rows.outputs(candidates[pick.to(t.device)], False)["click"].float())
        y = torch.zeros(len(t), len(logits), device=t.device)
        y[:, 0] = 1.0
        out["click"] = F.binary_cross_entropy_with_logits(torch.stack(logits, 1), y)
    return out
