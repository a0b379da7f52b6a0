"""The planted world every list metric's hand-computed example is stated in (the metric
contract suite checks each registered metric against its own example)::

    items        0    1    2    3    4    5
    genre        A    A    A    B    B    B      (features: one-hot)
    train users  4    3    2    1    1    0      (of 4; item 5 never seen)
    head         yes  yes  no   no   no   no
    new          no   no   no   no   yes  yes    (held out: the mixed view)

    user 0 relevant {1, 5}; user 1 relevant {3}; lists of K = 3

A metric's example gives its value on two lists per user, the better one first in the
metric's own declared direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.metrics._context import EvalContext

__all__ = ["EXAMPLE_LISTS", "MetricExample", "example_context"]

EXAMPLE_LISTS = {
    "better": np.array([[0, 1, 5], [3, 2, 4]]),
    "worse": np.array([[0, 2, 4], [0, 1, 2]]),
}
"""The two top-3 lists of users 0 and 1 every example is computed on."""


@dataclass(frozen=True, kw_only=True)
class MetricExample:
    """A list metric's value on :data:`EXAMPLE_LISTS` in :func:`example_context`, worked out
    by hand: ``better`` on the better lists, ``worse`` on the worse ones."""

    better: float
    worse: float


def example_context() -> EvalContext:
    """The planted world of the module docstring, in the mixed view (items 4 and 5 new)."""
    relevant = sp.csr_matrix((np.ones(3), ([0, 0, 1], [1, 5, 3])), shape=(2, 6))
    genre = np.array([0, 0, 0, 1, 1, 1])
    return EvalContext(
        relevant=relevant,
        exclude=sp.csr_matrix((2, 6)),
        features=np.eye(2)[genre],
        item_users=np.array([4, 3, 2, 1, 1, 0]),
        n_train_users=4,
        head=np.array([True, True, False, False, False, False]),
        cold_users=np.zeros(2, dtype=bool),
        new=np.array([False, False, False, False, True, True]),
    )
