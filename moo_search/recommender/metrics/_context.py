"""What the metrics need besides the lists: relevance, exclusions, popularity and slices of one
split part, in the warm or the mixed view of the item-cold protocol."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.metrics._functions import head_items, ranking_metrics


@dataclass
class EvalContext:
    """What the metrics need besides the lists: relevance, features, popularity, slices."""

    relevant: sp.csr_matrix  # (U, I) relevant items of the evaluated split
    exclude: sp.csr_matrix  # (U, I) items seen before the evaluated split
    features: np.ndarray  # (I, d) model-independent item features
    item_users: np.ndarray  # (I,) train users per item
    n_train_users: int
    head: np.ndarray  # (I,) bool
    cold_users: np.ndarray  # (U,) bool
    catalog: np.ndarray | None = None  # (I,) bool: the items this view ranks (None = all)
    new: np.ndarray | None = None  # (I,) bool: held-out (new) items in the catalog (mixed view)

    @property
    def n_catalog(self) -> int:
        return int(self.catalog.sum()) if self.catalog is not None else self.relevant.shape[1]

    @property
    def users(self) -> np.ndarray:
        """Evaluated users: at least one relevant item in the split."""
        return np.flatnonzero(np.asarray(self.relevant.sum(1)).ravel() > 0)

    @cached_property
    def tail_relevant(self) -> sp.csr_matrix:
        """The relevant items outside the popular head: the ``tail/`` slice's relevance."""
        return self.relevant.multiply(sp.csr_matrix(~self.head, dtype=np.float32)).tocsr()

    def has_tail(self, users: np.ndarray) -> np.ndarray:
        """Mask of ``users`` with a relevant tail item: the users of the ``tail/`` slice."""
        return np.asarray(self.tail_relevant[users].sum(1)).ravel() > 0

    @classmethod
    def from_split(
        cls,
        split: object,
        name: str,
        features: np.ndarray,
        *,
        cold_user_max: int = 10,
        head_share: float = 0.8,
        view: str = "warm",
    ) -> EvalContext:
        """Part ``name`` of ``split``. Under the item-cold protocol the ``warm`` view ranks the
        warm catalog (held-out items never recommended) against the warm relevance; the
        ``mixed`` view adds the part's held-out items to the catalog and their relevant
        interactions to the relevance (the catalog the day new items arrive)."""
        from moo_search.recommender.data.split import Split

        assert isinstance(split, Split)
        user_counts, item_users = split.train_counts()
        relevant = split.matrix(name, relevant_only=True)
        exclude = split.seen_before(name)
        catalog = new = None
        if split.has_cold_items and name != "train":
            catalog = split.warm
            if view == "mixed":
                items, _ = split.cold_part(name)
                new = np.zeros(split.n_items, dtype=bool)
                new[items] = True
                catalog = catalog | new
                relevant = (relevant + split.cold_matrix(name, relevant_only=True)).tocsr()
                relevant.data[:] = 1.0
            exclude = (exclude + _block_columns(~catalog, split.n_users)).tocsr()
            exclude.data[:] = 1.0
        elif view != "warm":
            raise ValueError(f"the {view!r} view needs held-out items (data.split.cold_items)")
        return cls(
            relevant=relevant,
            exclude=exclude,
            features=features,
            item_users=item_users,
            n_train_users=int((user_counts > 0).sum()),
            head=head_items(item_users, head_share),
            cold_users=user_counts <= cold_user_max,
            catalog=catalog,
            new=new,
        )


def _block_columns(mask: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """(n_rows, len(mask)) with ones in every column where ``mask`` is set."""
    cols = np.flatnonzero(mask)
    indptr = np.arange(n_rows + 1, dtype=np.int64) * len(cols)
    data = np.ones(n_rows * len(cols), dtype=np.float32)
    return sp.csr_matrix((data, np.tile(cols, n_rows), indptr), shape=(n_rows, len(mask)))


def cold_item_metrics(
    lists: np.ndarray, users: np.ndarray, relevant: sp.csr_matrix, k: int
) -> dict[str, float]:
    """The ``cold_item/`` slice: ranking metrics of lists drawn from a part's held-out items
    only (``lists`` hold item indices; ``relevant`` their relevance, users x full catalog)."""
    return {f"cold_item/{n}": v for n, v in ranking_metrics(lists, users, relevant, k).items()}


def user_hits(lists: np.ndarray, users: np.ndarray, ctx: EvalContext) -> dict[str, np.ndarray]:
    """Per evaluated user (``users`` = ``ctx.users``, the rows of ``lists``): relevant items in
    the top-k list, all (``"all"``; precision@k = mean / k) and tail ones (``"tail"``; over
    the users with a relevant tail item, tail/precision@k = mean / k). Two models' vectors on
    the same split pair up user by user (:func:`paired_bootstrap`)."""
    n, k = lists.shape
    shown = sp.csr_matrix(
        (np.ones(n * k), lists.ravel(), np.arange(0, n * k + 1, k)), (n, ctx.relevant.shape[1])
    )
    return {
        name: np.asarray(shown.multiply(rel[users]).sum(1)).ravel().round().astype(np.int64)
        for name, rel in (("all", ctx.relevant), ("tail", ctx.tail_relevant))
    }
