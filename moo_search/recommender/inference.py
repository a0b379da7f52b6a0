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
from moo_search.recommender.zscore import standardise

__all__ = [
    "RIDGE_GRID",
    "CatalogScorer",
    "RidgeMap",
    "nearest_only",
    "new_item_knobs",
    "recommend_lists",
]


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

    def first(self, n: int) -> TextNeighbours:
        """Each item's ``n`` nearest of its kept neighbours (rows are kept nearest first): the
        neighbours at a smaller count without searching again."""
        m = self.sparse
        if m is None or not m.nnz or n >= m.indptr[1] - m.indptr[0]:
            return self
        width = m.indptr[1] - m.indptr[0]
        keep = (np.arange(m.nnz) % width) < n
        indptr = np.arange(0, m.shape[0] * n + 1, n)
        small = sp.csr_matrix((m.data[keep], m.indices[keep], indptr), m.shape)
        return TextNeighbours(small, None, self.warm)


RIDGE_GRID: tuple[float, ...] = (10.0, 1.0, 0.1, 0.01, 0.001)
"""The relative ridges of the text-to-backbone map tried on validation, simplest first."""


@dataclass(frozen=True)
class RidgeMap:
    """A ridge map from item text onto the collaborative backbone, fitted on warm items only
    (warm transfer, as DropoutNet/Heater map content onto collaborative factors).

    An item-based backbone scores r(u, j) = x_u . b_j; the ridge map b_j ~ W [e_j, 1] over the
    warm items' text embeddings E (with an intercept) gives a new item i the score
    x_u W [e_i, 1] = z_u E1 (E1'E1 + lam I)^-1 [e_i, 1], z_u the user's z-scored backbone
    scores of the warm items. Written that way it needs only the backbone's scores, so it
    serves every backbone, and a new item's score depends on its own text and the warm items
    alone. ``lam`` = ``ridge`` x the mean squared norm of the warm embeddings."""

    coef: np.ndarray  # (n_warm, d + 1) float64: E1 (E1'E1 + lam I)^-1
    warm: np.ndarray | None  # (I,) bool, or None (every item warm)

    @classmethod
    def fit(cls, item_emb: Any, warm: Any, ridge: float) -> RidgeMap:
        """The map of the ``warm`` rows of ``item_emb`` (a tensor; ``warm`` a bool tensor or
        None) at relative ridge ``ridge``."""
        emb = item_emb.double().cpu().numpy()
        warm_np = None if warm is None else warm.cpu().numpy().astype(bool)
        e = emb if warm_np is None else emb[warm_np]
        e1 = np.hstack([e, np.ones((len(e), 1))])
        gram = e1.T @ e1
        lam = ridge * float(np.einsum("id,id->", e, e)) / max(len(e), 1)
        coef = np.linalg.solve(gram + lam * np.eye(len(gram)), e1.T).T
        return cls(np.ascontiguousarray(coef), warm_np)

    def user_vectors(self, collaborative: Any) -> Any:
        """(n, d + 1) float64 tensor: the users' z-scored backbone rows (n, I) through the
        map."""
        import torch

        warm = (
            None if self.warm is None else torch.as_tensor(self.warm, device=collaborative.device)
        )
        z = standardise(collaborative.float(), warm).double()
        z = z if warm is None else z[:, warm]
        return z @ torch.as_tensor(self.coef, device=z.device)

    def scores(self, collaborative: Any, item_emb: Any) -> Any:
        """(n, len(item_emb)) float64: the users' rows carried to the items of ``item_emb``."""
        q = self.user_vectors(collaborative)
        return q[:, :-1] @ item_emb.double().T + q[:, -1:]


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
    new_items: str = "history"  # how new items are scored (fusion.new_items, "auto" resolved)
    new_item_ridge: float | None = None  # the map's relative ridge (None: 1)
    new_item_blend: float | None = None  # the map's weight in "blend" (None: 0.5)
    _neighbour_sims: Any = field(default=None, repr=False)
    _ridge_map: Any = field(default=None, repr=False)

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
        new_items: Any = None,
    ) -> CatalogScorer:
        """Embed the catalog and the known users (no grad; under ``autocast`` when given,
        as in training) and keep them; ``history`` (see the field) when there are new
        items, and ``new_items`` (a FusionConfig: its new_item* knobs)."""
        import torch

        with torch.no_grad():
            if model.alpha > 0:
                return cls(
                    model,
                    model.encode_table(item_tokens, device, autocast=autocast),
                    model.encode_table(user_tokens, device, autocast=autocast),
                    device,
                    history=history,
                    **new_item_knobs(new_items),
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

    def ridge_map(self) -> RidgeMap:
        """The text-to-backbone map at ``new_item_ridge``, fitted once."""
        if self._ridge_map is None:
            ridge = 1.0 if self.new_item_ridge is None else self.new_item_ridge
            self._ridge_map = RidgeMap.fit(self.item_emb, self.model.warm, ridge)
        return self._ridge_map

    def new_item_text(self, history_rows: Any, items: Any = None, collaborative: Any = None) -> Any:
        """c(u, i), what scores a new item i (``new_items``): ``history``, the mean text
        similarity of i to the user's items over i's nearest warm items (item-kNN over the text
        tower; ``history_rows``: (n, I) sparse, rows summing to 1); ``map``, the user's
        backbone scores (``collaborative``: raw (n, I) rows) through the :class:`RidgeMap`;
        ``blend``, the two z-scored and mixed. Float32 (n, I), or (n, len(items)); None
        without a text tower, without new items or with ``user`` (the semantic score)."""
        import torch

        mode = self.new_items
        if self.item_emb is None or mode == "user" or (mode != "map" and history_rows is None):
            return None
        if mode == "map" and collaborative is None:
            return None
        if mode == "history":
            c = self.neighbour_sims().of_history(history_rows, items)
            return torch.as_tensor(c, device=self.device).float()
        emb = self.item_emb if items is None or mode == "blend" else self.item_emb[items]
        mapped = self.ridge_map().scores(collaborative, emb)
        if mode == "map":
            return mapped.float()
        warm = self.model.warm
        warm = None if warm is None else warm.to(mapped.device)
        text = torch.as_tensor(self.neighbour_sims().of_history(history_rows), device=mapped.device)
        b = 0.5 if self.new_item_blend is None else self.new_item_blend
        mixed = b * standardise(mapped, warm) + (1.0 - b) * standardise(text, warm)
        return (mixed if items is None else mixed[:, items]).float()

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
                new_item_text=None
                if self.model.warm is None
                else self.new_item_text(history_rows, collaborative=collaborative),
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


def new_item_knobs(fusion: Any) -> dict[str, Any]:
    """A :class:`CatalogScorer`'s new-item fields from a FusionConfig (``auto``: history until
    the trial chooses on validation)."""
    if fusion is None:
        return {}
    mode = fusion.new_items
    return {
        "new_item_neighbours": fusion.new_item_neighbours,
        "new_items": "history" if mode == "auto" else mode,
        "new_item_ridge": fusion.new_item_ridge,
        "new_item_blend": fusion.new_item_blend,
    }
