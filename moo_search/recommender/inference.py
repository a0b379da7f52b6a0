"""One inference path: the recommender scores users over the catalog (:class:`CatalogScorer`),
and one function turns scores into lists (:func:`recommend_lists`: exclusions, then re-ranking
or plain top-k). Trial evaluation, ``evaluate_scorer`` (baselines too) and the exported model
all go through these, so a list is computed the same way wherever it is shown."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.metrics import topk
from moo_search.recommender.rerank import rerank

__all__ = ["CatalogScorer", "nearest_only", "recommend_lists"]


def recommend_lists(
    scores: np.ndarray,
    k: int,
    *,
    exclude: sp.csr_matrix | list[np.ndarray] | None,
    rerank_cfg: Any | None,
    features: np.ndarray,
    item_counts: np.ndarray,
) -> np.ndarray:
    """Top-``k`` item indices per row of ``scores`` (n, n_items).

    ``exclude`` gives, per row, the items never to recommend (seen before the split), as a
    sparse (n, n_items) matrix or one index array per row. With a ``rerank_cfg`` whose knobs
    are active (``mmr_lambda < 1`` or ``pop_penalty > 0``) the lists are re-ranked by
    :func:`moo_search.recommender.rerank.rerank`; otherwise they are the plain top-k.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    if isinstance(exclude, sp.spmatrix) and exclude.nnz:
        r, c = exclude.nonzero()
        s[r, c] = -np.inf
    elif isinstance(exclude, list):
        for row, items in enumerate(exclude):
            s[row, items] = -np.inf
    if rerank_cfg is not None and (rerank_cfg.mmr_lambda < 1 or rerank_cfg.pop_penalty > 0):
        return rerank(
            s,
            k,
            features=features,
            item_counts=item_counts,
            mmr_lambda=rerank_cfg.mmr_lambda,
            pop_penalty=rerank_cfg.pop_penalty,
            candidates=rerank_cfg.candidates,
        )
    return topk(s, k)


def nearest_only(sim: Any, n: int | None, warm: Any = None) -> Any:
    """``sim`` (rows, I) with each row's ``n`` largest entries over the ``warm`` columns
    kept and the rest zero (``n`` None or at least the warm count: unchanged)."""
    import torch

    n_warm = sim.shape[1] if warm is None else int(warm.sum())
    if n is None or n >= n_warm:
        return sim
    ranked = sim if warm is None else sim.masked_fill(~warm.to(sim.device), -torch.inf)
    keep = torch.topk(ranked, n, dim=1).indices
    return torch.zeros_like(sim).scatter_(1, keep, sim.gather(1, keep))


NEIGHBOUR_BLOCK_BYTES = 1 << 27
"""The float64 similarity rows one block of :func:`text_neighbours` holds (128 MiB)."""


@dataclass(frozen=True)
class TextNeighbours:
    """Each item's text similarity to its nearest warm items (itself excluded), without an
    items x items matrix: a sparse (I, I) matrix of at most n entries a row (``sparse``), or,
    where every warm item counts, the item embeddings themselves (``emb``: c = (h E) E^T less
    each item's own term, h a user's warm history)."""

    sparse: Any  # scipy CSR (I, I) float64, or None
    emb: Any  # (I, d) float64 numpy when ``sparse`` is None
    warm: Any  # (I,) bool numpy, or None (every item warm)

    def of_history(self, rows: Any, items: Any = None) -> np.ndarray:
        """c(u, i) = sum over i's neighbours j of rows[u, j] * sim(i, j), float64 (n, I) or
        (n, len(items)); ``rows``: (n, I) scipy sparse or dense."""
        rows = sp.csr_matrix(np.atleast_2d(rows) if not sp.issparse(rows) else rows)
        rows = rows.astype(np.float64)
        if self.sparse is not None:
            s = self.sparse if items is None else self.sparse[np.asarray(items)]
            return np.asarray((rows @ s.T).todense())
        if self.warm is not None:
            rows = rows.multiply(self.warm[None, :]).tocsr()
        emb = self.emb if items is None else self.emb[np.asarray(items)]
        own = (rows if items is None else rows[:, np.asarray(items)]).toarray()
        c: np.ndarray = np.asarray(rows @ self.emb) @ emb.T - own * np.einsum("id,id->i", emb, emb)
        return c


def text_neighbours(item_emb: Any, n: int | None, warm: Any = None) -> TextNeighbours:
    """Each item's ``n`` nearest warm items by text (every warm item when ``n`` is None or at
    least their count), found a block of rows at a time: the same entries
    :func:`nearest_only` keeps of the dense items x items similarity, in bounded memory."""
    import torch

    emb = item_emb.double()
    n_items = emb.shape[0]
    n_warm = n_items if warm is None else int(warm.sum())
    warm_np = None if warm is None else warm.cpu().numpy().astype(bool)
    if n is None or n >= n_warm:
        return TextNeighbours(None, emb.cpu().numpy(), warm_np)
    cold = None if warm is None else ~warm.to(emb.device)
    step = max(1, NEIGHBOUR_BLOCK_BYTES // (8 * n_items))
    cols, vals = [], []
    for start in range(0, n_items, step):
        sim = emb[start : start + step] @ emb.T
        own = torch.arange(start, start + sim.shape[0], device=emb.device)
        sim[own - start, own] = 0.0
        if cold is not None:
            sim[:, cold] = 0.0  # only warm items have users to borrow
        ranked = sim if cold is None else sim.masked_fill(cold, -torch.inf)
        keep = torch.topk(ranked, n, dim=1).indices
        cols.append(keep.cpu().numpy().ravel())
        vals.append(sim.gather(1, keep).cpu().numpy().ravel())
    indptr = np.arange(0, n_items * n + 1, n)
    matrix = sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr), (n_items,) * 2)
    return TextNeighbours(matrix, None, warm_np)


@dataclass
class CatalogScorer:
    """A trained :class:`~moo_search.recommender.model.recommender.Recommender` with its item and user
    text embeddings computed once: fused scores of users over the whole catalog.

    ``item_emb``/``user_emb`` are None when the text tower is off (``alpha == 0``);
    ``item_alpha`` (n_items,) fuses at other weights than the model's own (:meth:`serving`).
    """

    model: Any
    item_emb: Any
    user_emb: Any
    device: Any
    item_alpha: Any = None
    # (U, I) sparse, rows the mean over each user's train items: scores new items by the
    # text of what the user has (Recommender.fuse); None without new items
    history: Any = None
    new_item_neighbours: int | None = None  # a new item's nearest warm items that score it
    _neighbour_sims: Any = field(default=None, repr=False)

    def serving(self, item_alpha: np.ndarray) -> CatalogScorer:
        """The same embeddings fused at other per-item weights (no re-encoding)."""
        import torch

        a = torch.as_tensor(item_alpha, dtype=torch.float32, device=self.device)
        return replace(self, item_alpha=a)

    @classmethod
    def encode(
        cls,
        model: Any,
        item_tokens: Any,
        user_tokens: Any,
        device: Any,
        autocast: Any = None,
        history: Any = None,
        new_item_neighbours: int | None = None,
    ) -> CatalogScorer:
        """Embed the catalog and the known users (no grad; under ``autocast`` when given,
        as in training) and keep them; ``history`` (see the field) when there are new
        items."""
        import torch

        with torch.no_grad():
            if model.alpha > 0:
                return cls(
                    model,
                    model.encode_table(item_tokens, device, autocast=autocast),
                    model.encode_table(user_tokens, device, autocast=autocast),
                    device,
                    history=history,
                    new_item_neighbours=new_item_neighbours,
                )
        return cls(model, None, None, device)

    def neighbour_sims(self) -> TextNeighbours:
        """The text similarities of each item to its ``new_item_neighbours`` nearest warm
        items (every warm item when None), computed once, without an items x items matrix."""
        if self._neighbour_sims is None:
            self._neighbour_sims = text_neighbours(
                self.item_emb, self.new_item_neighbours, self.model.warm
            )
        return self._neighbour_sims

    def new_item_text(self, history_rows: Any, items: Any = None) -> Any:
        """c(u, i): the mean text similarity of item i to the user's items, over i's nearest
        warm items (item-kNN over the text tower; ``history_rows``: (n, I) sparse, rows summing
        to 1), float64 like :meth:`semantic`, for every item or only ``items``; None without a
        text tower or without new items."""
        import torch

        if self.item_emb is None or history_rows is None:
            return None
        c = self.neighbour_sims().of_history(history_rows, items)
        return torch.as_tensor(c, device=self.device).float()

    def semantic(self, user_vectors: Any) -> Any:
        """s(u, ·) for user text embeddings (n, d), or None without a text tower.

        Computed in float64 and rounded to float32, so that a user's scores do not depend on
        the batch they are scored in: a float32 GEMM over all users and a GEMV over one round
        differently (3.6e-7 here, ~2e-5 once z-scored), enough to swap near-tied items, and
        the exported model scores one user at a time what the trial scored all at once."""
        if user_vectors is None or self.item_emb is None:
            return None
        return (user_vectors.double() @ self.item_emb.double().T).float()

    def fuse(self, user_vectors: Any, collaborative: Any, history_rows: Any = None) -> np.ndarray:
        """Fused scores (n, n_items) from user text embeddings (or None), raw collaborative
        rows (n, n_items) and, with new items, the users' history rows."""
        import torch

        with torch.no_grad():
            fused = self.model.fuse(
                self.semantic(user_vectors),
                collaborative,
                self.item_alpha,
                new_item_text=self.new_item_text(history_rows),
            )
            return fused.float().cpu().numpy()

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Fused scores of known users (indices) over the catalog: a ``Scorer``."""
        import torch

        with torch.no_grad():
            u = torch.as_tensor(users, device=self.device)
            vectors = self.user_emb[u] if self.user_emb is not None else None
            rows = None if self.history is None else self.history[users]
            return self.fuse(vectors, self.model.collaborative(u), rows)
