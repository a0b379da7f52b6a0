"""Closed-form backbones kept sparse, for catalogs of 10^4-10^6 items where an
n_items x n_items float matrix does not fit: :class:`SparseWeights` (W, possibly as a product
of sparse factors), ItemKNN's top-n neighbours computed a chunk of items at a time, and SANSA
(Spisak et al., RecSys 2023) from the ``sansa`` package (the ``scale`` extra)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "SANSA_L2S",
    "SANSA_WEIGHTS_PER_ITEM",
    "SPARSE_FROM_ITEMS",
    "SparseWeights",
    "Weights",
    "itemknn_sparse",
    "sansa_density",
    "sansa_weights",
    "user_scores",
]

SPARSE_FROM_ITEMS = 8192
"""ItemKNN keeps its top-n neighbours per item sparse from this many items on (the same
values as the dense matrix, without its n_items^2 floats)."""

SANSA_WEIGHTS_PER_ITEM = 100
"""SANSA's density when ``fusion.cf_params.density`` is not set: this many weights per item
(per factor), capped at dense. On Book-Crossing's 10-core, 300 took 2.4x the fit time for a
lower validation ndcg@10 (0.0635 vs 0.0660 at l2 = 5)."""

SANSA_L2S = (0.5, 2.0, 5.0, 20.0, 100.0)
"""The validation grid for SANSA's L2 weight when ``fusion.cf_params.l2`` is not set (on the
Gramian of the column-normalised matrix that SANSA's incomplete factorization works on, so
smaller than EASE's)."""


@dataclass(frozen=True, eq=False)
class SparseWeights:
    """An item-item backbone kept sparse: user scores are ``x @ F_1 @ F_2 ...`` over the
    ``factors`` (one for a sparse ItemKNN; two for SANSA, whose W is the product of a sparse
    approximate inverse's factors and is denser than either)."""

    factors: tuple[sp.csr_matrix, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.factors[0].shape[0], self.factors[-1].shape[1])

    @property
    def nnz(self) -> int:
        return sum(int(f.nnz) for f in self.factors)

    def score(self, x: sp.spmatrix) -> np.ndarray:
        """Dense float32 scores of the rows of ``x`` (each row independent of the others).

        The last product is taken sparse x sparse where the rows reaching it are sparse
        enough, else as the last factor's transpose times the dense rows (torch's CSR x dense
        product, on every core): SANSA's first product leaves each row ~6% dense on 10^5 items,
        and SciPy's sparse x sparse product into a near-dense result took 16 s for 1024 users
        there against 3-4 s this way (``benchmarks/bench_scale.py``)."""
        out = sp.csr_matrix(x, dtype=np.float32)
        *head, last = self.factors
        for f in head:
            out = out @ f
        if out.shape[0] and _dense_is_cheaper(out, last):
            return self._last_dense(out)
        return np.asarray((out @ last).toarray(), dtype=np.float32)

    def _last_dense(self, rows: sp.csr_matrix) -> np.ndarray:
        """``rows @ last factor`` as (last^T @ rows^T)^T, the rows made dense."""
        import torch

        cache = self.__dict__.setdefault("_cache", {})
        if "last_t" not in cache:  # the transpose, as a torch CSR tensor, made once
            t = self._last_t()
            with warnings.catch_warnings():  # "sparse CSR tensor support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                cache["last_t"] = torch.sparse_csr_tensor(
                    torch.from_numpy(t.indptr.astype(np.int64)),
                    torch.from_numpy(t.indices.astype(np.int64)),
                    torch.from_numpy(np.asarray(t.data, dtype=np.float32)),
                    size=t.shape,
                    check_invariants=False,  # built from a valid SciPy CSR matrix
                )
        dense_t = torch.from_numpy(np.asarray(rows.T.toarray(), dtype=np.float32))
        return np.ascontiguousarray((cache["last_t"] @ dense_t).numpy().T)

    def _last_t(self) -> sp.csr_matrix:
        cache = self.__dict__.setdefault("_cache", {})
        if "last_t_csr" not in cache:
            cache["last_t_csr"] = sp.csr_matrix(self.factors[-1].T, dtype=np.float32)
        return cache["last_t_csr"]  # type: ignore[no-any-return]

    def pair_scores(self, x: sp.spmatrix, items: np.ndarray) -> np.ndarray:
        """Float32 ``(x @ W)[b, items[b]]`` for each row b of ``x``, without the rows' other
        scores: the rows through every factor but the last, then each one's dot product
        with the last factor's column (equal to :meth:`score`'s up to float rounding)."""
        out = sp.csr_matrix(x, dtype=np.float32)
        for f in self.factors[:-1]:
            out = out @ f
        cols = self._last_t()[np.asarray(items, dtype=np.int64)]
        return np.asarray(out.multiply(cols).sum(1), dtype=np.float32).ravel()

    def restrict(self, keep: np.ndarray) -> SparseWeights:
        """W over the items ``keep`` only (rows and columns)."""
        if len(self.factors) == 1:
            return SparseWeights((self.factors[0][keep][:, keep].tocsr(),))
        first, *mid, last = self.factors
        return SparseWeights((first[keep].tocsr(), *mid, last[:, keep].tocsr()))

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Dense float64 rows ``idx`` of W."""
        out = self.factors[0][idx]
        for f in self.factors[1:]:
            out = out @ f
        return np.asarray(out.toarray(), dtype=np.float64)

    def columns(self, idx: np.ndarray) -> np.ndarray:
        """Dense float64 columns ``idx`` of W, one per row: W[:, idx].T."""
        out = self.factors[-1].T.tocsr()[idx]
        for f in reversed(self.factors[:-1]):
            out = out @ f.T
        return np.asarray(out.toarray(), dtype=np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        """The factors as named CSR arrays (what the disk cache and a bundle store)."""
        out: dict[str, np.ndarray] = {}
        for n, f in enumerate(self.factors):
            out[f"f{n}_data"] = np.ascontiguousarray(f.data, dtype=np.float32)
            out[f"f{n}_indices"] = np.ascontiguousarray(f.indices, dtype=np.int64)
            out[f"f{n}_indptr"] = np.ascontiguousarray(f.indptr, dtype=np.int64)
            out[f"f{n}_shape"] = np.asarray(f.shape, dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SparseWeights:
        factors = []
        for n in range(sum(1 for k in arrays if k.endswith("_shape"))):
            shape = tuple(int(v) for v in arrays[f"f{n}_shape"])
            factors.append(
                sp.csr_matrix(
                    (arrays[f"f{n}_data"], arrays[f"f{n}_indices"], arrays[f"f{n}_indptr"]),
                    shape=shape,
                )
            )
        return cls(tuple(factors))


SPARSE_WORK_RATIO = 30
"""A sparse x sparse product is taken where its multiply-adds times this stay under the dense
way's (the last factor's nonzeros per row scored): SciPy's sparse accumulator cost ~90x a
multiply-add of torch's CSR x dense product on 10^5 items (2 cores, AVX2)."""


def _dense_is_cheaper(rows: sp.csr_matrix, last: sp.csr_matrix) -> bool:
    per_row = np.diff(last.indptr)
    sparse_work = float(per_row[rows.indices].sum())
    return sparse_work * SPARSE_WORK_RATIO > float(last.nnz) * rows.shape[0]


Weights = np.ndarray | SparseWeights
"""A closed-form backbone's W: a dense (I, I) array or :class:`SparseWeights`."""


def user_scores(x: sp.spmatrix, w: Weights) -> np.ndarray:
    """``x @ W`` as dense float32 rows, for the train rows ``x`` of some users (or a new
    user's history row); a row's scores do not depend on the other rows."""
    if isinstance(w, SparseWeights):
        return w.score(x)
    return np.asarray(sp.csr_matrix(x, dtype=np.float32) @ w, dtype=np.float32)


def itemknn_sparse(x: sp.spmatrix, neighbours: int = 100, chunk: int = 1024) -> SparseWeights:
    """:func:`itemknn_weights` kept sparse: each item's ``neighbours`` most similar items
    (exactly that many where ties straddle the cut), computed ``chunk`` items at a time, so
    memory is O(items x neighbours + items x chunk)."""
    x = sp.csc_matrix(x, dtype=np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(0)).ravel())
    xn = sp.csc_matrix(x @ sp.diags(1.0 / np.maximum(norms, 1e-12)))
    xt = xn.T.tocsr()
    n_items = x.shape[1]
    n = min(neighbours, n_items - 1)
    rows, cols, vals = [], [], []
    for start in range(0, n_items, chunk):
        block = np.asarray((xt[start : start + chunk] @ xn).toarray())  # (c, I) similarities
        block[np.arange(len(block)), np.arange(start, start + len(block))] = 0.0
        top = np.argpartition(-block, n - 1, axis=1)[:, :n]
        v = np.take_along_axis(block, top, axis=1)
        keep = v > 0
        rows.append(np.repeat(np.arange(start, start + len(block)), n)[keep.ravel()])
        cols.append(top[keep])
        vals.append(v[keep])
    w = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    return SparseWeights((w,))


def sansa_weights(
    x: sp.spmatrix, l2: float, density: float, factorizer: str = "icf"
) -> SparseWeights:
    """SANSA (Spisak et al., "Scalable Approximate NonSymmetric Autoencoder", RecSys 2023):
    EASE with the inverse of X^T X + l2 I approximated by sparse LDL^T factors, then a sparse
    approximate inverse of L, kept as two sparse factors of ``density`` each.

    ``factorizer``: ``icf`` (incomplete Cholesky: memory and time grow with the density; the
    default) or ``cholmod`` (exact Cholesky, then sparsified: more accurate, but on
    Book-Crossing's 13k items it took 508 s against ICF's 20 s)."""
    cfg = _sansa_config(l2, density, factorizer)  # (first: it names the missing extra)
    from sansa import SANSA

    sansa_log = logging.getLogger("sansa")
    level = sansa_log.level
    sansa_log.setLevel(logging.ERROR)  # INFO per step, and a WARNING about dense Gramians
    try:
        # items without a train interaction are left out of the fit (an empty Gramian row
        # breaks sansa's column norms) and get zero weights: they score nothing, as in EASE
        x = sp.csr_matrix(x, dtype=np.float32)
        n_items = x.shape[1]
        active = np.flatnonzero(np.diff(x.tocsc().indptr) > 0)
        model = SANSA(cfg).fit(sp.csr_matrix(x[:, active]))
    finally:
        sansa_log.setLevel(level)
    w1, w2 = model.weights
    put = sp.csr_matrix(
        (np.ones(len(active), dtype=np.float32), (active, np.arange(len(active)))),
        shape=(n_items, len(active)),
    )  # (items, active items): row active[j] is the fitted item j
    return SparseWeights(
        (
            sp.csr_matrix(put @ sp.csr_matrix(w1, dtype=np.float32)),
            sp.csr_matrix(sp.csr_matrix(w2, dtype=np.float32) @ put.T),
        )
    )


def _sansa_config(l2: float, density: float, factorizer: str) -> Any:
    """sansa's config; a SpecError naming the extra when the package is not installed."""
    try:
        from sansa import (
            CHOLMODGramianFactorizerConfig,
            ICFGramianFactorizerConfig,
            SANSAConfig,
            UMRUnitLowerTriangleInverterConfig,
        )
    except ImportError as e:  # the optional extra
        from moo_search.errors import SpecError

        raise SpecError(
            f"is 'sansa', which needs the sansa package ({e}); install the extra with "
            "pip install 'moo-search[scale]' (scikit-sparse compiles against SuiteSparse: "
            "apt-get install libsuitesparse-dev)",
            field="fusion.cf",
        ) from None
    return SANSAConfig(
        l2=float(l2),
        weight_matrix_density=float(density),
        gramian_factorizer_config=(
            CHOLMODGramianFactorizerConfig()
            if factorizer == "cholmod"
            else ICFGramianFactorizerConfig(
                factorization_shift_step=1e-3, factorization_shift_multiplier=2.0
            )
        ),
        lower_triangle_inverter_config=UMRUnitLowerTriangleInverterConfig(
            scans=1, finetune_steps=5
        ),
    )


def sansa_density(n_items: int, density: float | None) -> float:
    """``fusion.cf_params.density`` or :data:`SANSA_WEIGHTS_PER_ITEM` weights per item."""
    if density is not None:
        return float(density)
    return min(1.0, SANSA_WEIGHTS_PER_ITEM / max(n_items, 1))
