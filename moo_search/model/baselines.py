"""Reference recommenders: Random, MostPop, ItemKNN, BPR-MF and EASE, and the count-based
like-rate CTR baseline.

They share the split and the metric code with the trials, and become the reference markers
and the reference front on the dashboard (:mod:`moo_search.reference`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from moo_search.data import Dataset, Split
from moo_search.evaluate import Scorer, evaluate_scorer
from moo_search.metrics import auc, logloss
from moo_search.spec import EvalConfig

__all__ = [
    "BASELINES",
    "CTR_BASELINE",
    "BaselineContext",
    "baseline_test_hits",
    "bpr_mf",
    "ease",
    "evaluate_baselines",
    "item_knn",
    "like_rate_ctr",
    "most_pop",
    "random_scores",
]

CTR_BASELINE = "LikeRate"
"""The name of the count-based CTR baseline's row (it has CTR metrics only)."""


@dataclass
class BaselineContext:
    """What a baseline may read: the split, the dataset (fingerprint, features) and eval."""

    ds: Dataset
    split: Split
    eval_cfg: EvalConfig
    seed: int = 0
    features: np.ndarray | None = None

    def item_features(self) -> np.ndarray:
        if self.features is None:
            self.features = self.ds.item_features()
        return self.features


def random_scores(ctx: BaselineContext) -> Scorer:
    rng = np.random.default_rng(ctx.seed)
    table = rng.random((ctx.split.n_users, ctx.split.n_items))
    return lambda users: table[users]


def most_pop(ctx: BaselineContext) -> Scorer:
    _, counts = ctx.split.train_counts()
    pop = counts.astype(np.float64)
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def _item_item(ctx: BaselineContext, name: str) -> Scorer:
    from moo_search.model.backbones import backbone_weights

    w, _ = backbone_weights(
        name,
        split=ctx.split,
        features=ctx.item_features(),
        eval_cfg=ctx.eval_cfg,
    )
    assert w is not None
    x = ctx.split.matrix("train").astype(np.float32).tocsr()
    return lambda users: np.asarray(x[users] @ w)


def item_knn(ctx: BaselineContext) -> Scorer:
    """Cosine item-item similarity on train, top-100 per item (Sarwar et al., 2001)."""
    return _item_item(ctx, "itemknn")


def ease(ctx: BaselineContext) -> Scorer:
    """EASE (Steck, WWW 2019), lambda tuned on validation ndcg@k."""
    return _item_item(ctx, "ease")


def bpr_mf(
    ctx: BaselineContext,
    *,
    dim: int = 64,
    epochs: int = 40,
    lr: float = 5e-3,
    reg: float = 1e-4,
    batch_size: int = 2048,
) -> Scorer:
    """Matrix factorisation trained with BPR (Rendle et al., UAI 2009), uniform negatives."""
    import torch

    split = ctx.split
    gen = torch.Generator().manual_seed(ctx.seed)
    users = torch.as_tensor(split.train["user"].to_numpy().copy())
    items = torch.as_tensor(split.train["item"].to_numpy().copy())
    ue = torch.nn.Parameter(torch.randn(split.n_users, dim, generator=gen) * 0.05)
    ie = torch.nn.Parameter(torch.randn(split.n_items, dim, generator=gen) * 0.05)
    ib = torch.nn.Parameter(torch.zeros(split.n_items))
    opt = torch.optim.Adam([ue, ie, ib], lr=lr)
    n = len(users)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            u, i = users[idx], items[idx]
            j = torch.randint(0, split.n_items, (len(idx),), generator=gen)
            x = (ue[u] * (ie[i] - ie[j])).sum(1) + ib[i] - ib[j]
            loss = -torch.nn.functional.logsigmoid(x).mean()
            loss = loss + reg * (
                ue[u].pow(2).sum() + ie[i].pow(2).sum() + ie[j].pow(2).sum()
            ) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        u_np, i_np, b_np = ue.numpy().copy(), ie.numpy().copy(), ib.numpy().copy()
    return lambda us: u_np[us] @ i_np.T + b_np


BASELINES: dict[str, Callable[[BaselineContext], Scorer]] = {
    "Random": random_scores,
    "MostPop": most_pop,
    "ItemKNN": item_knn,
    "BPR": bpr_mf,
    "EASE": ease,
}
"""Ranking baselines by display name; adding one is one entry here plus its test."""


def like_rate_ctr(
    split: Split, parts: tuple[str, ...] = ("val", "test")
) -> dict[str, dict[str, float]]:
    """The count CTR baseline on each part's exposures: smoothed train like-rate of the user
    plus that of the item (logits), no learning."""
    from moo_search.model.ctr import like_rate_logits, split_like_rates

    rates = split_like_rates(split)
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        df = split.part(part)
        if len(df) == 0:
            continue
        z = like_rate_logits(rates, df["user"].to_numpy(), df["item"].to_numpy())
        p = 1.0 / (1.0 + np.exp(-z))
        y = (df["rating"].to_numpy() >= split.threshold).astype(np.float64)
        out[part] = {"ctr_auc": auc(y, p), "ctr_logloss": logloss(y, p)}
    return out


def evaluate_baselines(
    ds: Dataset,
    split: Split,
    eval_cfg: EvalConfig,
    *,
    seed: int = 0,
    names: tuple[str, ...] = tuple(BASELINES),
    ctr: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{baseline: {"val": metrics, "test": metrics}}``, plus the like-rate CTR row; every
    ranking row carries its fit-and-score time as ``cost/seconds``."""
    ctx = BaselineContext(ds=ds, split=split, eval_cfg=eval_cfg, seed=seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        t0 = time.perf_counter()
        scorer = BASELINES[name](ctx)
        res = evaluate_scorer(scorer, ds, split, eval_cfg=eval_cfg, features=ctx.item_features())
        assert isinstance(res, dict)
        secs = time.perf_counter() - t0
        for part in res.values():
            part["cost/seconds"] = secs
        out[name] = res
    if ctr:
        out[CTR_BASELINE] = like_rate_ctr(split)
    return out


PAIRED_BASELINES = ("EASE",)
"""Baselines whose per-user test hits every study records, to pair trials with."""


def baseline_test_hits(
    spec: Any, data: Any, names: tuple[str, ...] = PAIRED_BASELINES
) -> dict[str, Any]:
    """Per evaluated test user, the baselines' relevant items in their top ``eval.k``
    (packed, as trials record theirs), the users' count and which of them have a relevant
    tail item: ``{"n_users", "tail_users", name: {"all", "tail"}}``."""
    from moo_search.study import pack_counts
    from moo_search.trial import eval_context, hits_per_user

    ctx = BaselineContext(ds=data.ds, split=data.split, eval_cfg=spec.eval, seed=spec.seed)
    ectx = eval_context(spec, data, "test")
    out: dict[str, Any] = {}
    for name in names:
        res = evaluate_scorer(
            BASELINES[name](ctx),
            data.ds,
            data.split,
            eval_cfg=spec.eval,
            parts=("test",),
            features=data.features,
            return_lists=True,
        )
        assert isinstance(res, tuple)
        users, lists = res[1]["test"]
        out[name] = hits_per_user(spec, ectx, users, lists)
    out["n_users"] = len(ectx.users)
    out["tail_users"] = pack_counts(ectx.has_tail(ectx.users))
    return out
