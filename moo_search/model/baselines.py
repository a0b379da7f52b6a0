"""Reference recommenders: Random, MostPop, ItemKNN and BPR-MF.

They share the split and the metric code with the trials, and become the reference
markers on the Pareto front.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from moo_search.data import Dataset, Split
from moo_search.evaluate import evaluate_scorer
from moo_search.spec import EvalConfig

__all__ = ["BASELINES", "bpr_mf", "evaluate_baselines", "item_knn", "most_pop", "random_scores"]


def random_scores(split: Split, *, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    table = rng.random((split.n_users, split.n_items))
    return lambda users: table[users]


def most_pop(split: Split, *, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    _, counts = split.train_counts()
    pop = counts.astype(np.float64)
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def item_knn(
    split: Split, *, seed: int = 0, neighbours: int = 100
) -> Callable[[np.ndarray], np.ndarray]:
    """Cosine item-item similarity on train, top-``neighbours`` per item (Sarwar et al., 2001)."""
    x = split.matrix("train").astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
    sim = (x.T @ x).toarray() / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[1]:
        cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
        sim[sim < cut] = 0.0
    xd = x.tocsr()
    return lambda users: np.asarray(xd[users] @ sim)


def bpr_mf(
    split: Split,
    *,
    seed: int = 0,
    dim: int = 64,
    epochs: int = 40,
    lr: float = 5e-3,
    reg: float = 1e-4,
    batch_size: int = 2048,
) -> Callable[[np.ndarray], np.ndarray]:
    """Matrix factorisation trained with BPR (Rendle et al., UAI 2009), uniform negatives."""
    import torch

    gen = torch.Generator().manual_seed(seed)
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


BASELINES: dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]] = {
    "Random": random_scores,
    "MostPop": most_pop,
    "ItemKNN": item_knn,
    "BPR": bpr_mf,
}


def evaluate_baselines(
    ds: Dataset,
    split: Split,
    eval_cfg: EvalConfig,
    *,
    seed: int = 0,
    names: tuple[str, ...] = tuple(BASELINES),
) -> dict[str, dict[str, dict[str, float]]]:
    """``{baseline: {"val": metrics, "test": metrics}}``."""
    feats = ds.item_features()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        scorer = BASELINES[name](split, seed=seed)
        res = evaluate_scorer(scorer, ds, split, eval_cfg=eval_cfg, features=feats)
        assert isinstance(res, dict)
        out[name] = res
    return out
