"""Pareto numerics: non-dominated sorting, hypervolume, knee, compromise, pseudo-weights.

Pure numpy functions over an objective matrix ``F`` (n points x m objectives) and a list of
directions (``"minimize"`` / ``"maximize"``), so mixed directions are handled in one place:
every function first maps ``F`` to minimisation form.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "compromise_index",
    "default_reference_point",
    "dominated_by",
    "hypervolume",
    "hypervolume_history",
    "knee_index",
    "marginal_tradeoffs",
    "nondominated_ranks",
    "pareto_mask",
    "pseudo_weight_index",
    "pseudo_weights",
    "to_min",
]


def to_min(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``F`` with maximised columns negated, as float64 of shape (n, m)."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[1] != len(directions):
        raise ValueError(f"F must have shape (n, {len(directions)}), got {F.shape}")
    bad = [d for d in directions if d not in ("minimize", "maximize")]
    if bad:
        raise ValueError(f"directions must be 'minimize' or 'maximize', got {bad}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return F * sign


def _dominated_by_any(Fm: np.ndarray, block: int = 1024) -> np.ndarray:
    """mask[i] = some j dominates i (j <= i everywhere, < somewhere); minimisation form."""
    n = len(Fm)
    out = np.zeros(n, dtype=bool)
    for s in range(0, n, block):
        a = Fm[s : s + block][:, None, :]  # (b, 1, m)
        le = np.all(Fm[None, :, :] <= a, axis=-1)
        lt = np.any(Fm[None, :, :] < a, axis=-1)
        out[s : s + block] = np.any(le & lt, axis=1)
    return out


def dominated_by(
    F: np.ndarray, G: np.ndarray, directions: Sequence[str], *, block: int = 1024
) -> np.ndarray:
    """mask[i] = some row of ``G`` dominates row i of ``F`` (no worse everywhere, better
    somewhere)."""
    Fm, Gm = to_min(F, directions), to_min(np.asarray(G).reshape(-1, len(directions)), directions)
    out = np.zeros(len(Fm), dtype=bool)
    if not len(Gm):
        return out
    for s in range(0, len(Fm), block):
        a = Fm[s : s + block][:, None, :]
        le = np.all(Gm[None, :, :] <= a, axis=-1)
        lt = np.any(Gm[None, :, :] < a, axis=-1)
        out[s : s + block] = np.any(le & lt, axis=1)
    return out


def _nondominated(Fm: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows (minimisation form, no NaN), by a lexicographic sweep:
    a point can only be dominated by a point before it in lexicographic order, so each
    point is checked against the front found so far -- O(n * |front| * m)."""
    n, m = Fm.shape
    order = np.lexsort(Fm.T[::-1])
    mask = np.zeros(n, dtype=bool)
    front = np.empty((0, m))
    for i in order:
        p = Fm[i]
        if len(front) and ((front <= p).all(1) & (front < p).any(1)).any():
            continue
        mask[i] = True
        front = np.vstack([front, p])
    return mask


def pareto_mask(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated points (rows with a NaN are never on the front)."""
    Fm = to_min(F, directions)
    ok = ~np.isnan(Fm).any(1)
    mask = np.zeros(len(Fm), dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx):
        mask[idx] = _nondominated(Fm[idx])
    return mask


def nondominated_ranks(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Front number of every point (0 = Pareto front), by repeated peeling (Deb et al., 2002)."""
    Fm = to_min(F, directions)
    ranks = np.full(len(Fm), -1, dtype=np.int64)
    remaining = np.flatnonzero(~np.isnan(Fm).any(1))
    r = 0
    while len(remaining):
        dominated = _dominated_by_any(Fm[remaining])
        ranks[remaining[~dominated]] = r
        remaining = remaining[dominated]
        r += 1
    return ranks


def default_reference_point(
    F: np.ndarray, directions: Sequence[str], margin: float = 0.1
) -> np.ndarray:
    """0 for maximised metrics (all moo-search metrics are >= 0); for minimised ones the worst
    observed value plus ``margin`` of the observed range. In the objectives' own units."""
    F = np.asarray(F, dtype=np.float64)
    ref = np.zeros(len(directions))
    for j, d in enumerate(directions):
        if d == "minimize":
            col = F[:, j][np.isfinite(F[:, j])]
            hi, lo = (col.max(), col.min()) if len(col) else (1.0, 0.0)
            ref[j] = hi + margin * (hi - lo if hi > lo else max(abs(hi), 1e-12))
    return ref


def _hv2d(P: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(P[:, 0], kind="stable")
    P = P[order]
    hv, best_y = 0.0, ref[1]
    for x, y in P:
        if y < best_y:
            hv += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(hv)


def hypervolume(F: np.ndarray, ref: Sequence[float], directions: Sequence[str]) -> float:
    """Volume dominated by ``F`` and bounded by the reference point ``ref`` (own units).

    Points that do not strictly dominate ``ref`` contribute nothing. Exact: a sweep in 2-D,
    moocore's algorithms (Fonseca et al., 2006; Beume, 2009) in 3-D and above.
    """
    Fm = to_min(F, directions)
    r = to_min(np.asarray(ref, dtype=np.float64)[None, :], directions)[0]
    Fm = Fm[~np.isnan(Fm).any(1)]
    Fm = Fm[(Fm < r).all(1)]
    if len(Fm) == 0:
        return 0.0
    return _hv_min(Fm[_nondominated(Fm)], r)


def _hv_min(Fm: np.ndarray, r: np.ndarray) -> float:
    """Hypervolume of a non-dominated set strictly inside the reference box (min form)."""
    if len(Fm) == 0:
        return 0.0
    if Fm.shape[1] == 1:
        return float(r[0] - Fm[:, 0].min())
    if Fm.shape[1] == 2:
        return _hv2d(Fm, r)
    import moocore

    return float(moocore.hypervolume(Fm, ref=r))


def hypervolume_history(
    F: np.ndarray, ref: Sequence[float], directions: Sequence[str], *, max_points: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """(trial positions, hypervolume of the first ``i + 1`` points) at up to ``max_points``
    evenly spaced positions, always including the last."""
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    pos = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(np.int64))
    Fm = to_min(F, directions)
    r = to_min(np.asarray(ref, dtype=np.float64)[None, :], directions)[0]
    checkpoints = set(pos.tolist())
    front = np.empty((0, Fm.shape[1]))
    changed, hv, out = False, 0.0, []
    for i, p in enumerate(Fm):  # keep the front of the prefix incrementally
        inside = not np.isnan(p).any() and (p < r).all()
        if inside and not (len(front) and ((front <= p).all(1) & (front < p).any(1)).any()):
            keep = ~((p <= front).all(1) & (p < front).any(1))
            front = np.vstack([front[keep], p])
            changed = True
        if i in checkpoints:
            if changed:
                hv, changed = _hv_min(front, r), False
            out.append(hv)
    return pos, np.array(out)


def _normalise(Fm: np.ndarray) -> np.ndarray:
    lo, hi = Fm.min(0), Fm.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (Fm - lo) / span


def compromise_index(F: np.ndarray, directions: Sequence[str], p: float = 2.0) -> int:
    """Index of the point closest (L_p) to the utopia point after normalising ``F`` to [0, 1]
    by its ideal and nadir (compromise programming; Zeleny, 1973)."""
    Fm = to_min(F, directions)
    Z = _normalise(Fm)
    return int(np.argmin(np.linalg.norm(Z, ord=p, axis=1)))


def knee_index(F: np.ndarray, directions: Sequence[str]) -> int:
    """Index of the knee: after normalising to [0, 1], the point farthest below the
    hyperplane through the extreme points (Das, 1999; Branke et al., 2004)."""
    Fm = to_min(F, directions)
    if len(Fm) <= 2:
        return compromise_index(F, directions)
    Z = _normalise(Fm)
    m = Z.shape[1]
    extremes = Z[np.argmin(Z, axis=0)]  # (m, m): point best in objective j
    try:
        w = np.linalg.solve(extremes, np.ones(m))  # plane w . z = 1 through the extremes
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        w = np.ones(m)  # degenerate extremes: plane sum(z) = 1
    dist = (1.0 - Z @ w) / np.linalg.norm(w)
    return int(np.argmax(dist))


def pseudo_weights(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Deb's pseudo-weights: w_ij = ((f_j^max - f_ij)/(f_j^max - f_j^min)) normalised per row,
    in minimisation form (Deb, Multi-Objective Optimization, 2001, eq. 8.1)."""
    Fm = to_min(F, directions)
    lo, hi = Fm.min(0), Fm.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    W = (hi - Fm) / span
    s = W.sum(1, keepdims=True)
    return np.where(s > 0, W / np.where(s > 0, s, 1.0), 1.0 / Fm.shape[1])


def pseudo_weight_index(F: np.ndarray, directions: Sequence[str], weights: Sequence[float]) -> int:
    """The point whose pseudo-weights are closest to the desired ``weights`` (normalised)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(directions),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"weights must be {len(directions)} non-negative numbers, not all zero; got {list(w)}"
        )
    w = w / w.sum()
    return int(np.argmin(np.linalg.norm(pseudo_weights(F, directions) - w, axis=1)))


def marginal_tradeoffs(
    F: np.ndarray, directions: Sequence[str], i: int, j: int
) -> list[dict[str, float]]:
    """Between neighbouring front points sorted along objective ``i``: how much objective
    ``j`` is given up per unit of ``i`` gained (``rate`` = -delta_j / delta_i, both in
    "better" units, so a positive rate is a real trade-off)."""
    Fm = to_min(F, directions)
    front = np.flatnonzero(~_dominated_by_any(Fm[:, [i, j]]))
    front = front[np.argsort(-Fm[front, i], kind="stable")]  # worst in i first
    out = []
    for b, a in itertools.pairwise(front):
        gain_i = Fm[b, i] - Fm[a, i]  # b -> a improves i by gain_i (>= 0)
        loss_j = Fm[a, j] - Fm[b, j]  # ... and gives up loss_j of j (>= 0 on a front)
        out.append(
            {
                "from": int(b),
                "to": int(a),
                "gain": float(gain_i),
                "cost": float(loss_j),
                "rate": float(loss_j / gain_i) if gain_i > 0 else float("inf"),
            }
        )
    return out


def successive_halving_keeps(
    F: np.ndarray, mine: int, directions: Sequence[str], *, eta: float, min_points: int
) -> bool:
    """Whether row ``mine`` of ``F`` (every trial's objective vector at one rung) survives
    Pareto-rank successive halving: the best ``ceil(n / eta)`` by non-domination rank go on
    (a rank group that straddles the cut survives whole), the rest stop. With fewer than
    ``min_points`` rows nothing stops yet. (Schmucker et al., 2021, "Multi-objective
    Asynchronous Successive Halving", rank-based promotion.)

    The answer depends only on the set of rows, not their order, so every worker that reads
    the same rung from the storage decides the same.
    """
    n = len(F)
    if n < min_points:
        return True
    ranks = nondominated_ranks(F, directions)
    ranks = np.where(ranks < 0, ranks.max() + 1, ranks)  # a vector with NaN ranks last
    keep = math.ceil(n / eta)
    return int((ranks < ranks[mine]).sum()) < keep
