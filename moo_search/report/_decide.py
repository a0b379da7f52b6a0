"""Decision aids on the feasible front: knee, compromise, pseudo-weights, neighbour trade-offs
and each parameter's importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moo_search import pareto

if TYPE_CHECKING:
    from moo_search.report._data import StudyData

__all__ = ["decide", "param_importance"]


def decide(data: StudyData) -> None:
    """Knee, compromise, pseudo-weights and neighbour trade-offs on the feasible front."""
    front = data.front
    if front.empty:
        return
    F = front[[f"obj:{m}" for m in data.metrics]].to_numpy(dtype=np.float64)
    numbers = front["number"].to_numpy()
    data.knee = int(numbers[pareto.knee_index(F, data.directions)])
    data.compromise = int(numbers[pareto.compromise_index(F, data.directions)])
    W = pareto.pseudo_weights(F, data.directions)
    data.pseudo_weights = {int(n): [float(x) for x in w] for n, w in zip(numbers, W)}
    for i, a in enumerate(data.metrics):
        for j, b in enumerate(data.metrics):
            if i == j:
                continue
            steps = pareto.marginal_tradeoffs(F, data.directions, i, j)
            data.tradeoffs[f"{a}|{b}"] = [
                {**s, "from": int(numbers[int(s["from"])]), "to": int(numbers[int(s["to"])])}
                for s in steps
            ]


def param_importance(data: StudyData, bins: int = 8) -> dict[str, dict[str, float]]:
    """Per objective, the share of its variance each parameter explains on its own: the
    correlation ratio eta^2 over categories or ``bins`` quantile bins (Pearson, 1905),
    normalised to sum to 1 over parameters."""
    done = data.complete
    out: dict[str, dict[str, float]] = {}
    if len(done) < 3 or not data.params:
        return out
    for m in data.metrics:
        y = done[f"obj:{m}"].to_numpy(dtype=np.float64)
        total = float(np.var(y))
        scores: dict[str, float] = {}
        for p in data.params:
            col = done.get(f"param:{p}")
            if col is None:
                continue
            mask = col.notna().to_numpy()
            if mask.sum() < 3 or total <= 0:
                scores[p] = 0.0
                continue
            x = col[mask]
            if data.param_kinds[p] == "categorical" or x.nunique() <= bins:
                groups = x.astype(str).to_numpy()
            else:
                ranks = x.rank(method="first").to_numpy()
                groups = np.floor((ranks - 1) / len(ranks) * bins).astype(int).astype(str)
            yy = y[mask]
            stats = pd.DataFrame({"g": groups, "y": yy}).groupby("g")["y"].agg(["size", "mean"])
            between = float((stats["size"] * (stats["mean"] - yy.mean()) ** 2).sum())
            scores[p] = between / (len(yy) * float(np.var(yy))) if np.var(yy) > 0 else 0.0
        s = sum(scores.values())
        out[m] = {p: (v / s if s > 0 else 0.0) for p, v in scores.items()}
    return out
