"""How a trial scores new items (``fusion.new_items`` and its knobs), chosen on validation.

Each candidate ranks validation's held-out items for every validation user with a relevant
one, and is judged by its ndcg@``eval.k`` per user. The choice is the simplest candidate
within one standard error of the best (the one-standard-error rule, Hastie, Tibshirani and
Friedman, *Elements of Statistical Learning*, 7.10): the standard error of the paired
difference to the best, user by user. With a few hundred new items validation and test
disagree about small differences; the rule keeps what validation cannot tell apart from the
best at its simplest, so the choice moves less from one item split to the next.

Simplest first: the text history over every warm item, then over fewer neighbours (200 to
5); the user tower's similarity; the ridge map, heaviest ridge first; the blend, least map
first. Test is never read.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from moo_search.recommender.inference import RIDGE_GRID, CatalogScorer, text_neighbours
from moo_search.recommender.prepare import PreparedData
from moo_search.recommender.spec import RecommenderSpec

__all__ = ["BLEND_GRID", "one_se_choice", "tune_new_items"]

log = logging.getLogger(__name__)

BLEND_GRID: tuple[float, ...] = (0.25, 0.5, 0.75)
"""The map's weights in ``new_items: blend`` tried on validation, least map first."""


def one_se_choice(values: list[np.ndarray]) -> int:
    """The first of ``values`` (per-user scores of candidates, simplest first, the same users
    in the same order) whose mean is within one standard error of the best's; the standard
    error is that of the paired per-user difference."""
    means = [float(v.mean()) for v in values]
    best = int(np.argmax(means))
    for i, v in enumerate(values):
        d = values[best] - v
        se = float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        if float(d.mean()) <= se:
            return i
    return best


class _Judge:
    """Per validation user with a relevant held-out item: a candidate's ndcg@k over them."""

    def __init__(self, spec: RecommenderSpec, data: PreparedData) -> None:
        self.split, self.k, self.batch = data.split, spec.eval.k, spec.eval.batch_size
        self.items, _ = data.split.cold_part("val")
        self._collab: dict[bytes, Any] = {}

    def collaborative(self, cand: CatalogScorer, users: np.ndarray) -> Any:
        import torch

        key = users.tobytes()
        if key not in self._collab:
            with torch.no_grad():
                self._collab[key] = cand.model.collaborative(torch.as_tensor(users)).float()
        return self._collab[key]

    def __call__(self, cand: CatalogScorer) -> np.ndarray:
        import torch

        from moo_search.recommender.evaluate import cold_item_lists
        from moo_search.recommender.metrics import ranking_per_user

        def score(users: np.ndarray) -> np.ndarray:
            out = np.zeros((len(users), self.split.n_items), dtype=np.float32)
            with torch.no_grad():
                if cand.new_items == "user":
                    c = cand.semantic(cand.user_emb[torch.as_tensor(users)])[:, self.items]
                else:
                    need = cand.new_items in ("map", "blend")
                    collab = self.collaborative(cand, users) if need else None
                    rows = None if cand.history is None else cand.history[users]
                    c = cand.new_item_text(rows, self.items, collab)
            out[:, self.items] = c.cpu().numpy()
            return out

        users, lists, relevant = cold_item_lists(score, self.split, "val", self.k, self.batch)
        per_user: np.ndarray = ranking_per_user(lists, users, relevant, self.k)[f"ndcg@{self.k}"]
        return np.asarray(per_user, dtype=np.float64)


def _history_cands(
    spec: RecommenderSpec, data: PreparedData, scorer: CatalogScorer
) -> list[tuple[dict[str, Any], CatalogScorer]]:
    from moo_search.recommender.model.content import KNN_NEIGHBOURS

    n_warm = int(data.split.warm.sum())
    fixed = spec.fusion.new_item_neighbours
    grid = [fixed] if fixed is not None else [None, *sorted(filter(None, KNN_NEIGHBOURS))[::-1]]
    grid = list(dict.fromkeys(n_warm if n is None else min(n, n_warm) for n in grid))
    deep = [n for n in grid if n < n_warm]
    sparse = text_neighbours(scorer.item_emb, max(deep), scorer.model.warm) if deep else None
    cands = []
    for n in grid:  # every warm item: the embeddings themselves, no neighbour matrix
        sims = sparse.first(n) if n < n_warm and sparse is not None else None
        cand = replace(scorer, new_items="history", new_item_neighbours=n, _neighbour_sims=sims)
        cands.append(({"fusion.new_item_neighbours": n}, cand))
    return cands


Cand = tuple[dict[str, Any], CatalogScorer, np.ndarray]
"""A judged candidate: its knobs (spec paths), its scorer, its per-user validation ndcg."""


def tune_new_items(
    spec: RecommenderSpec, data: PreparedData, scorer: CatalogScorer
) -> tuple[CatalogScorer, dict[str, Any]]:
    """The scorer with its new-item scoring chosen on validation (the module's rule) among
    the knobs the spec leaves open, and the chosen knobs as spec paths (``{}`` when nothing
    is open or nothing can judge: no text tower, no held-out item, no validation user)."""
    fusion, split = spec.fusion, data.split
    mode = fusion.new_items
    if scorer.item_emb is None or not split.has_cold_items or mode == "user":
        return scorer, {}
    open_ = (
        fusion.new_item_neighbours is None and mode in ("history", "blend"),
        fusion.new_item_ridge is None and mode in ("map", "blend"),
        fusion.new_item_blend is None and mode == "blend",
    )
    if mode != "auto" and not any(open_):
        return scorer, {}
    if not split.cold_matrix("val", relevant_only=True).nnz:
        return scorer, {}
    judge = _Judge(spec, data)
    finalists = _finalists(spec, data, scorer, judge)
    if mode != "auto":
        finalists = [f for f in finalists if f[1].new_items == mode]
    values = [v for _, _, v in finalists]
    pick = one_se_choice(values)
    knobs, chosen, value = finalists[pick]
    knobs = {**knobs, "fusion.new_items": chosen.new_items}
    log.info(
        "new items scored by %s, chosen on validation (ndcg@%d %.4f; best %.4f)",
        knobs,
        judge.k,
        value.mean(),
        max(v.mean() for v in values),
    )
    return chosen, {k: v for k, v in knobs.items() if v is not None}


def _finalists(
    spec: RecommenderSpec, data: PreparedData, scorer: CatalogScorer, judge: _Judge
) -> list[Cand]:
    """Each mode's best (its knobs chosen by the rule within the mode), simplest mode first;
    the blends over the chosen history and map."""
    fusion, mode = spec.fusion, spec.fusion.new_items
    out: list[Cand] = []
    hist = map_ = None
    if mode in ("history", "blend", "auto"):
        hist = _best(judge, _history_cands(spec, data, scorer))
        out.append(hist)
    if mode == "auto":
        user = replace(scorer, new_items="user")
        out.append(({}, user, judge(user)))
    if mode in ("map", "blend", "auto"):
        ridges = RIDGE_GRID if fusion.new_item_ridge is None else (fusion.new_item_ridge,)
        cands = [
            ({"fusion.new_item_ridge": r}, replace(scorer, new_items="map", new_item_ridge=r))
            for r in ridges
        ]
        map_ = _best(judge, cands)
        out.append(map_)
    if hist is not None and map_ is not None:
        blends = BLEND_GRID if fusion.new_item_blend is None else (fusion.new_item_blend,)
        for b in blends:
            cand = replace(
                map_[1],
                new_items="blend",
                new_item_blend=b,
                new_item_neighbours=hist[1].new_item_neighbours,
                _neighbour_sims=hist[1]._neighbour_sims,
            )
            out.append(({**hist[0], **map_[0], "fusion.new_item_blend": b}, cand, judge(cand)))
    return out


def _best(judge: _Judge, cands: list[tuple[dict[str, Any], CatalogScorer]]) -> Cand:
    """The rule's choice among one mode's candidates (simplest first)."""
    values = [judge(c) for _, c in cands]
    for (knobs, _), v in zip(cands, values, strict=True):
        log.debug("new items on validation: %s ndcg@%d %.4f", knobs, judge.k, v.mean())
    i = one_se_choice(values)
    return cands[i][0], cands[i][1], values[i]
