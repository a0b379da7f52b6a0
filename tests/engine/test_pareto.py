"""Pareto numerics against hand-computed cases and against pymoo, with mixed directions."""

from __future__ import annotations

import numpy as np
import pytest

from moo_search import pareto as P

MIN2 = ["minimize", "minimize"]


def test_pareto_mask_and_ranks_mixed_directions():
    # maximise a, minimise b
    F = np.array([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5], [1.0, 2.0], [np.nan, 0.0]])
    d = ["maximize", "minimize"]
    assert P.pareto_mask(F, d).tolist() == [True, True, True, False, False]
    assert P.nondominated_ranks(F, d).tolist() == [0, 0, 0, 1, -1]


def test_pareto_mask_matches_pymoo_on_random_points():
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    rng = np.random.default_rng(0)
    F = rng.random((300, 3))
    ours = np.flatnonzero(P.pareto_mask(F, ["minimize"] * 3))
    theirs = np.sort(NonDominatedSorting().do(F, only_non_dominated_front=True))
    assert ours.tolist() == theirs.tolist()


def test_hypervolume_2d_hand_computed_and_direction_invariant():
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    # ref (4, 4): 3*1 + 2*1 + 1*1 = 6
    assert P.hypervolume(F, [4, 4], MIN2) == pytest.approx(6.0)
    # the same geometry stated as maximisation of negated values
    assert P.hypervolume(-F, [-4, -4], ["maximize", "maximize"]) == pytest.approx(6.0)
    # a point beyond the reference contributes nothing
    assert P.hypervolume(np.array([[5.0, 0.0]]), [4, 4], MIN2) == 0.0


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_pymoo(m):
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(m)
    F = rng.random((60, m))
    ref = np.full(m, 1.1)
    assert P.hypervolume(F, ref, ["minimize"] * m) == pytest.approx(
        float(HV(ref_point=ref)(F)), rel=1e-9
    )


def test_hypervolume_history_is_monotone():
    rng = np.random.default_rng(1)
    pos, hv = P.hypervolume_history(rng.random((50, 2)), [1.1, 1.1], MIN2, max_points=20)
    assert pos[-1] == 49 and len(pos) == 20
    assert np.all(np.diff(hv) >= -1e-12)


def test_knee_compromise_and_pseudo_weights():
    # a convex front with a pronounced knee at (0.1, 0.1)
    F = np.array([[0.0, 1.0], [0.1, 0.1], [1.0, 0.0], [0.5, 0.05]])
    assert P.knee_index(F, MIN2) == 1
    assert P.compromise_index(F, MIN2) == 1
    # mixed directions: maximise the first (negated values): the same point
    G = F.copy()
    G[:, 0] = -G[:, 0]
    assert P.knee_index(G, ["maximize", "minimize"]) == 1
    W = P.pseudo_weights(F, MIN2)
    assert np.allclose(W.sum(1), 1.0)
    assert P.pseudo_weight_index(F, MIN2, [1.0, 0.0]) == 0  # all weight on objective 0
    assert P.pseudo_weight_index(F, MIN2, [0.0, 1.0]) == 2
    with pytest.raises(ValueError, match="non-negative"):
        P.pseudo_weight_index(F, MIN2, [-1, 1])


def test_marginal_tradeoffs_between_neighbours():
    # maximise precision, maximise ild
    F = np.array([[0.10, 0.50], [0.08, 0.60], [0.05, 0.80]])
    t = P.marginal_tradeoffs(F, ["maximize", "maximize"], 1, 0)  # gain ild, pay precision
    assert len(t) == 2
    assert t[0]["gain"] == pytest.approx(0.1) and t[0]["cost"] == pytest.approx(0.02)
    assert t[0]["rate"] == pytest.approx(0.2)


def test_default_reference_point():
    F = np.array([[0.1, 2.0], [0.3, 4.0]])
    ref = P.default_reference_point(F, ["maximize", "minimize"])
    assert ref[0] == 0.0 and ref[1] == pytest.approx(4.2)


@pytest.mark.parametrize("m", [2, 3])
def test_incremental_history_equals_prefix_hypervolumes(m):
    rng = np.random.default_rng(7)
    F = rng.random((120, m))
    d = ["maximize"] + ["minimize"] * (m - 1)
    ref = [0.0] + [1.0] * (m - 1)
    pos, hv = P.hypervolume_history(F, ref, d, max_points=30)
    for p, h in zip(pos, hv):
        assert h == pytest.approx(P.hypervolume(F[: p + 1], ref, d))
