"""Collaborative backbones: the score r(u, i) the semantic tower is fused with.

``fusion.cf`` picks one by name from :data:`BACKBONES`:

- ``ease``: EASE (Steck, WWW 2019), closed-form item-item ridge regression on the train
  matrix; lambda tuned on validation over :data:`EASE_LAMBDAS` unless ``fusion.ease_lambda``.
- ``itemknn``: cosine item-item similarity, top-``fusion.knn_neighbours`` per item
  (Sarwar et al., WWW 2001).
- ``mf``: learned ID embeddings trained with the adapter (no closed form, nothing cached).

A closed-form backbone is an item-item matrix W; user scores are ``x_u @ W`` over the user's
train row x_u. W is computed once per (dataset, split, backbone parameters) and cached on disk,
so every trial of a study reuses it in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "BACKBONES",
    "EASE_LAMBDAS",
    "Backbone",
    "backbone_sha256",
    "backbone_weights",
    "ease_weights",
    "itemknn_weights",
    "split_fingerprint",
    "tune_ease_lambda",
]

logger = logging.getLogger("moo_search")

EASE_LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0)
"""The validation grid for EASE's L2 weight when ``fusion.ease_lambda`` is not set."""


def ease_weights(x: sp.spmatrix, lam: float) -> np.ndarray:
    """EASE's closed form: P = (X^T X + lam I)^-1, B = I - P diagMat(1 / diag(P)), diag(B) = 0
    (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019, eq. 8)."""
    g = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def itemknn_weights(x: sp.spmatrix, neighbours: int = 100) -> np.ndarray:
    """Cosine item-item similarity on train, top-``neighbours`` per item (Sarwar et al., 2001)."""
    x = x.astype(np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
    sim = (x.T @ x).toarray() / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[1]:
        cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
        sim[sim < cut] = 0.0
    return sim.astype(np.float32)


@dataclass(frozen=True)
class Backbone:
    """A registered collaborative backbone: ``fit(train matrix, **params) -> W`` or None (MF)."""

    name: str
    fit: Callable[..., np.ndarray] | None
    description: str


BACKBONES: dict[str, Backbone] = {
    "ease": Backbone("ease", ease_weights, "EASE, closed-form item-item ridge (Steck 2019)"),
    "itemknn": Backbone("itemknn", itemknn_weights, "cosine item-item kNN (Sarwar et al. 2001)"),
    "mf": Backbone("mf", None, "learned ID embeddings, trained with the adapter"),
}


def _cache_dir() -> Path:
    from moo_search.data.movielens import cache_dir

    return cache_dir() / "backbones"


def backbone_sha256(w: np.ndarray) -> str:
    """SHA-256 of W's float32 bytes (C order): what a trial record and an export pin."""
    return hashlib.sha256(np.ascontiguousarray(w, dtype=np.float32).tobytes()).hexdigest()


def split_fingerprint(split: Any) -> str:
    """SHA-256 of what a closed-form backbone is fit on and tuned against: the train and
    validation interactions (user, item, rating) and the relevance threshold."""
    h = hashlib.sha256()
    h.update(repr(float(split.threshold)).encode())
    for part in ("train", "val"):
        df = split.part(part)[["user", "item", "rating"]]
        h.update(np.ascontiguousarray(df.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def _key(fingerprint: str, name: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"split": fingerprint, "backbone": name, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cached(key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    path = _cache_dir() / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            logger.warning("backbone cache %s is unreadable; recomputing", path)
    w = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bb-", suffix=".npy", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.save(f, w)
    os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    return w


def tune_ease_lambda(
    split: Any, *, features: np.ndarray, eval_cfg: Any, grid: tuple[float, ...] = EASE_LAMBDAS
) -> tuple[float, dict[float, float]]:
    """The lambda of ``grid`` with the best validation ndcg@k (k = ``eval_cfg.k``)."""
    from moo_search.evaluate import evaluate_scorer

    x = split.matrix("train").astype(np.float64).tocsr()
    scores: dict[float, float] = {}
    metric = f"ndcg@{eval_cfg.k}"
    for lam in grid:
        w = ease_weights(x, lam)

        def score(users: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            return np.asarray(x[users] @ w)

        res = evaluate_scorer(
            score,
            None,
            split,
            eval_cfg=eval_cfg,
            parts=("val",),
            features=features,
        )
        assert isinstance(res, dict)
        scores[float(lam)] = float(res["val"][metric])
    best = max(scores, key=lambda k: scores[k])
    logger.info("EASE lambda tuned on validation %s: %s -> %g", metric, scores, best)
    return best, scores


def backbone_weights(
    name: str,
    *,
    split: Any,
    features: np.ndarray,
    eval_cfg: Any,
    ease_lambda: float | None = None,
    knn_neighbours: int = 100,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(item-item W or None for ``mf``, the parameters used), cached on disk.

    The cache key is the split's content (:func:`split_fingerprint`) and the backbone's
    parameters (for a tuned EASE: the grid and the evaluation k, then the chosen lambda).
    """
    backbone = BACKBONES[name]
    if backbone.fit is None:
        return None, {}
    x = split.matrix("train").astype(np.float64).tocsr()
    fingerprint = split_fingerprint(split)
    if name == "ease":
        params: dict[str, Any] = {}
        lam = ease_lambda
        if lam is None:
            tkey = _key(fingerprint, "ease-lambda", {"grid": EASE_LAMBDAS, "k": eval_cfg.k})
            chosen = _cached(
                tkey,
                lambda: np.array(
                    [tune_ease_lambda(split, features=features, eval_cfg=eval_cfg)[0]]
                ),
            )
            lam = float(chosen[0])
            params["tuned_on"] = f"val ndcg@{eval_cfg.k} over {list(EASE_LAMBDAS)}"
        params["lambda"] = float(lam)
        key = _key(fingerprint, name, {"lambda": float(lam)})
        return _cached(key, lambda: ease_weights(x, float(lam))), params
    params = {"neighbours": int(knn_neighbours)}
    key = _key(fingerprint, name, params)
    return _cached(key, lambda: itemknn_weights(x, knn_neighbours)), params
