"""Content scores: items scored by the similarity of their text to the items a user has.

A user's score of item i is the mean similarity of i's text vector to the vectors of the
user's train items, over i's ``neighbours`` most similar warm items (item-kNN over content,
Lops et al., "Content-based recommender systems", 2011). It needs no interaction of i, so it
ranks items added after training (the item-cold protocol) exactly like the others. The text
vectors are TF-IDF (scikit-learn's vectorizer) or a text encoder's pooled embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "KNN_NEIGHBOURS",
    "content_knn",
    "dense_fits",
    "frozen_item_vectors",
    "tfidf_item_vectors",
]

KNN_NEIGHBOURS: tuple[int | None, ...] = (5, 10, 20, 50, 100, 200, None)
"""The neighbour limits a content baseline is tuned over on validation (None = every warm
item)."""


def tfidf_item_vectors(texts: list[str], *, ngrams: int = 1) -> sp.csr_matrix:
    """Unit-norm TF-IDF vectors of the item texts (sublinear tf, word n-grams up to
    ``ngrams``; scikit-learn's :class:`~sklearn.feature_extraction.text.TfidfVectorizer`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, ngrams), min_df=1)
    return sp.csr_matrix(vec.fit_transform(texts), dtype=np.float32)


def frozen_item_vectors(model_cfg: Any, texts: list[str], *, batch_size: int = 128) -> np.ndarray:
    """Unit-norm pooled embeddings of ``texts`` by the base encoder of ``model_cfg``, with no
    adapter and no fine-tuning (fp32, eval mode)."""
    import torch

    from moo_search.recommender.model.encoder import family_of, load_encoder, pooling_of
    from moo_search.recommender.model.pooling import pool
    from moo_search.recommender.model.tokens import text_table

    encoder, tokenizer, _ = load_encoder(model_cfg)
    encoder.eval()
    how, left = pooling_of(model_cfg), family_of(model_cfg).padding_side == "left"
    table = text_table(tokenizer, texts, model_cfg, "item")
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for idx in table.length_buckets(batch_size):
            ids, mask = table.batch(idx, left=left)
            ids, mask = ids.to(encoder.device), mask.to(encoder.device)
            h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = pool(h, mask, how)
            out[idx] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
    return out


def dense_fits(n_items: int) -> bool:
    """Whether the dense path (four n_items x n_items float32 arrays at its peak, the size of
    two float64 ones) fits the dense budget (``MOO_SEARCH_DENSE_GB``); beyond it only a
    neighbour limit is possible."""
    from moo_search.recommender.model.backbones import dense_fits as fits

    return fits(n_items, 2)


def _sparse_content_knn(
    vectors: np.ndarray | sp.csr_matrix,
    x_train: sp.csr_matrix,
    warm: np.ndarray,
    neighbours: int,
    chunk: int = 1024,
) -> Any:
    """:func:`content_knn` for a large catalog: each item's ``neighbours`` nearest warm items
    found a chunk of items at a time and kept sparse (memory O(items x neighbours))."""
    n_items = len(warm)
    n = min(neighbours, int(warm.sum()))
    rows, cols, vals = [], [], []
    for start in range(0, n_items, chunk):
        idx = np.arange(start, min(start + chunk, n_items))
        sim = _similarity_rows(vectors, idx)
        sim[:, ~warm] = 0.0
        sim[np.arange(len(idx)), idx] = 0.0
        top = np.argpartition(-sim, n - 1, axis=1)[:, :n]
        rows.append(np.repeat(idx, n))
        cols.append(top.ravel())
        vals.append(np.take_along_axis(sim, top, axis=1).ravel())
    sim_t = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(cols), np.concatenate(rows))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )  # transposed: score(u, i) = sum_j x_uj sim[i, j] / |H_u|
    x = sp.csr_matrix(x_train, dtype=np.float32)
    counts = np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)
    x_mean = sp.csr_matrix(sp.diags(1.0 / counts).astype(np.float32) @ x)

    def score(users: np.ndarray) -> np.ndarray:
        return np.asarray((x_mean[users] @ sim_t).toarray())

    return score


def _similarity_rows(vectors: np.ndarray | sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
    sim = vectors[idx] @ vectors.T
    return np.asarray(sim.toarray() if sp.issparse(sim) else sim, dtype=np.float32)


def _similarity(vectors: np.ndarray | sp.csr_matrix) -> np.ndarray:
    sim = vectors @ vectors.T
    return np.asarray(sim.toarray() if sp.issparse(sim) else sim, dtype=np.float32)


def content_knn(
    vectors: np.ndarray | sp.csr_matrix,
    x_train: sp.csr_matrix,
    warm: np.ndarray,
    *,
    neighbours: int | None = None,
) -> Any:
    """A scorer (user indices -> scores over the catalog) from unit-norm item vectors (I, d)
    and the train interactions ``x_train`` (U, I): the mean similarity of each item to the
    user's train items, over its ``neighbours`` nearest warm items (None = all of them).

    Only warm items (``warm``, bool (I,)) can be neighbours, so a held-out item's score reads
    nothing but its own text and the warm items' texts.
    """
    if not dense_fits(len(warm)):
        if neighbours is None:
            raise ValueError("every warm item as a neighbour needs the dense similarity")
        return _sparse_content_knn(vectors, x_train, warm, neighbours)
    sim = _similarity(vectors)
    sim[:, ~warm] = 0.0  # only warm items are neighbours (a held-out item has no user)
    np.fill_diagonal(sim, 0.0)
    if neighbours is not None and neighbours < int(warm.sum()):
        keep = np.argpartition(-sim, neighbours - 1, axis=1)[:, :neighbours]
        mask = np.zeros_like(sim, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=1)
        sim = np.where(mask, sim, 0.0).astype(np.float32)
    x = sp.csr_matrix(x_train, dtype=np.float32)
    counts = np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)
    x_mean = sp.diags(1.0 / counts).astype(np.float32) @ x
    sim_t = np.ascontiguousarray(sim.T)  # score(u, i) = sum_j x_uj sim[i, j] / |H_u|

    def score(users: np.ndarray) -> np.ndarray:
        return np.asarray(x_mean[users] @ sim_t)

    return score
