"""Score once, rank many: one scoring pass per split part, from which the plain lists, every
re-ranked list and the new-item lists of that part are drawn.

A trial ranks each part many times (its own lists, each re-ranked variant, the warm and mixed
views and the held-out items), and the reference front re-ranks each baseline at every point
of its grid. On a catalog whose score matrix is not kept (:mod:`memory`) each of those used to
score every user again. A :class:`ScoreBook` scores each user of a part once and keeps, per
view, the user's best ``depth`` items in each of :data:`POP_BUCKETS` popularity buckets, the
row's smallest and largest finite score, and the best score each bucket has outside its
candidates; of the held-out items it keeps their scores.

Lists drawn from the book are the lists the full row gives:

* a plain top-k (k <= depth) is the prefix of the candidates, ranked by score and then by
  item index (:func:`~moo_search.recommender.metrics.ranked_top`: one total order);
* a re-ranked list needs the row's ``c`` most relevant items (relevance: the min-max scaled
  score less the popularity penalty). A candidate's relevance is computed from the kept
  extremes exactly as the full row computes it; an item outside the candidates has, in its
  bucket, a score no higher than the bucket's best outside score and a popularity no lower
  than the bucket's least popular item, so its relevance is at most that bound (buckets span
  equal log-popularity, so the bound is within ``pop_penalty / POP_BUCKETS`` of an item's).
  Where every bucket's bound is below the ``c``-th candidate's relevance (or equal to it, with
  the bucket's first item at that score after the candidate in index order) the candidates
  hold the row's top ``c``; a user for whom it is not is scored again in full (counted in
  ``rescored``). Equal relevance is decided by item index, as the full row decides it;
  distinct float32 scores stay distinct once scaled in float64.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from moo_search.recommender.inference import recommend_lists
from moo_search.recommender.metrics import EvalContext, ranked_top
from moo_search.recommender.rerank import mmr, pop_term, scaled

__all__ = ["POP_BUCKETS", "Candidates", "ScoreBook", "book_depth", "rank_cold"]

logger = logging.getLogger("moo_search")

POP_BUCKETS = 16
"""Popularity buckets (equal spans of log-popularity) the candidates are kept per."""


def book_depth(ks: Any, rerank_cfgs: Any = ()) -> int:
    """Candidates per bucket for lists of every ``ks`` (a plain top-k needs k) and re-ranked
    at every config of ``rerank_cfgs`` (half its ``candidates``: measured on MovieLens-100K's
    EASE scores, the candidates then decide 100% of the lists at pop_penalty 0.1, 99% at
    0.2, 78% at 0.3 and 14% at 0.5; the rest are scored again)."""
    halves = [-(-cfg.candidates // 2) for cfg in rerank_cfgs if cfg is not None]
    return max([*ks, *halves])


@dataclass
class Candidates:
    """One view of one part: each user's candidates and what bounds the rest of its row."""

    users: np.ndarray  # (U,) sorted
    items: np.ndarray  # (U, C) by score, then item index
    scores: np.ndarray  # (U, C) the score's own precision (float32 or 64), -inf if excluded
    lo: np.ndarray  # (U, 1) the row's smallest finite score (inf: none)
    hi: np.ndarray  # (U, 1) its largest (-inf: none)
    outside: np.ndarray  # (U, B) each bucket's best score outside the candidates (-inf: none)
    first_out: np.ndarray  # (U, B) the lowest item index holding it (-1: none outside)


def rank_cold(scores: np.ndarray, items: np.ndarray, tie_break: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` of ``items`` per row of ``scores`` (rows, len(items)); equal scores in the
    order of ``tie_break`` (random per user, the same for every model)."""
    order = np.lexsort((tie_break, -scores), axis=1)[:, : min(k, len(items))]
    out: np.ndarray = items[order]
    return out


class ScoreBook:
    """The candidates of ``score`` (users -> full-catalog scores) on each part of ``split``,
    scored once per part on first use (see the module)."""

    def __init__(
        self,
        score: Any,
        split: Any,
        features: np.ndarray,
        eval_cfg: Any,
        *,
        depth: int,
        only_users: np.ndarray | None = None,
        buckets: int = POP_BUCKETS,
    ) -> None:
        self.score, self.split, self.features, self.eval_cfg = score, split, features, eval_cfg
        self.depth, self.only_users = depth, only_users
        self.rescored = 0  # users scored again in full because the book could not serve them
        _, self.item_counts = split.train_counts()
        self.logpop = np.log1p(self.item_counts.astype(np.float64))
        # buckets of equal log-popularity span: an item's penalty is known to within
        # 1/buckets of the largest, and the bound is that tight
        edges = np.linspace(0.0, self.logpop.max(), buckets + 1)[1:-1]
        of = np.searchsorted(edges, self.logpop, side="right")
        self.buckets = [b for b in (np.flatnonzero(of == i) for i in range(buckets)) if len(b)]
        self.least_pop = np.array([self.logpop[b].min() for b in self.buckets])
        self.complete = all(len(b) <= depth for b in self.buckets)  # every item a candidate
        self.width = sum(min(len(b), depth) for b in self.buckets)  # candidates per user
        self._wide = False  # whether the scores are float64 (known at the first pass)
        self._contexts: dict[tuple[str, str], EvalContext] = {}
        self._views: dict[str, dict[str, Candidates]] = {}
        self._cold: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]] = {}

    def context(self, part: str, view: str = "warm") -> EvalContext:
        """The part's :class:`EvalContext` in ``view`` (built once)."""
        key = (part, view)
        if key not in self._contexts:
            cfg = self.eval_cfg
            self._contexts[key] = EvalContext.from_split(
                self.split,
                part,
                self.features,
                cold_user_max=cfg.cold_user_max,
                head_share=cfg.head_share,
                view=view,
            )
        return self._contexts[key]

    def users(self, part: str, view: str = "warm") -> np.ndarray:
        """The part's evaluated users in ``view`` (those with a relevant item; of
        ``only_users`` when given)."""
        users = self.context(part, view).users
        return users if self.only_users is None else np.intersect1d(users, self.only_users)

    def lists(self, part: str, view: str, k: int, rerank_cfg: Any = None) -> np.ndarray:
        """Top-``k`` lists of :meth:`users` (rows in that order), re-ranked by ``rerank_cfg``
        when its knobs are active: those of the full rows."""
        active = rerank_cfg is not None and (
            rerank_cfg.mmr_lambda < 1 or rerank_cfg.pop_penalty > 0
        )
        c = min(max(rerank_cfg.candidates, k), self.split.n_items) if active else k
        users = self.users(part, view)
        if (k > self.depth or c > self.width) and not self.complete:
            return self._rescore(part, view, users, k, rerank_cfg)
        cands = self._candidates(part)[view]
        if not active:
            return cands.items[:, : min(k, self.split.n_items)].astype(np.int64)
        return self._reranked(part, view, cands, k, c, rerank_cfg)

    def cold_lists(self, part: str, k: int) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """(users, top-``k`` lists of the part's held-out items, relevance), as
        :func:`~moo_search.recommender.evaluate.cold_item_lists` gives them."""
        self._candidates(part)
        users, items, scores, relevant = self._cold[part]
        tie_break = np.random.default_rng(0).random((len(users), len(items)))
        return users, rank_cold(scores, items, tie_break, k), relevant

    # ---- the pass

    def _candidates(self, part: str) -> dict[str, Candidates]:
        if part not in self._views:
            self._views[part] = self._score_part(part)
        return self._views[part]

    def _score_part(self, part: str) -> dict[str, Candidates]:
        split = self.split
        views = ["warm", "mixed"] if split.has_cold_items and part != "train" else ["warm"]
        wanted = {v: self.users(part, v) for v in views}
        cold_items = cold_users = None
        if len(views) > 1:
            cold_items, _ = split.cold_part(part)
            relevant = split.cold_matrix(part, relevant_only=True)
            cold_users = np.flatnonzero(np.asarray(relevant.sum(1)).ravel() > 0)
            cold_scores: np.ndarray | None = None
        union = np.unique(np.concatenate([*wanted.values(), *([cold_users] * (len(views) > 1))]))
        out: dict[str, Candidates] = {}
        step = self.eval_cfg.batch_size
        for start in range(0, len(union), step):
            batch = union[start : start + step]
            raw = self.score(batch)
            if not out:
                self._wide = np.asarray(raw).dtype.itemsize > 4
                out = {v: self._empty(u) for v, u in wanted.items()}
            for view, users in wanted.items():
                self._fill(out[view], part, view, batch, raw, users)
            if cold_users is not None and cold_items is not None:
                sel = np.isin(batch, cold_users)
                rows = np.asarray(raw[sel])[:, cold_items]
                if cold_scores is None:
                    cold_scores = np.empty((len(cold_users), len(cold_items)), rows.dtype)
                cold_scores[np.searchsorted(cold_users, batch[sel])] = rows
        if cold_users is not None and cold_items is not None:
            if cold_scores is None:
                cold_scores = np.zeros((0, len(cold_items)), np.float32)
            self._cold[part] = (cold_users, cold_items, cold_scores, relevant)
        return out or {v: self._empty(u) for v, u in wanted.items()}

    def _empty(self, users: np.ndarray) -> Candidates:
        n, width = len(users), self.width
        return Candidates(
            users=users,
            items=np.zeros((n, width), np.int32 if self.split.n_items < 2**31 else np.int64),
            scores=np.zeros((n, width), np.float64 if self._wide else np.float32),
            lo=np.zeros((n, 1)),
            hi=np.zeros((n, 1)),
            outside=np.full((n, len(self.buckets)), -np.inf),
            first_out=np.full((n, len(self.buckets)), -1, np.int64),
        )

    def _fill(
        self, c: Candidates, part: str, view: str, batch: np.ndarray, raw: Any, users: np.ndarray
    ) -> None:
        """Each of ``batch``'s users in ``users``: its excluded row's candidates into ``c``."""
        sel = np.isin(batch, users)
        if not sel.any():
            return
        at = np.searchsorted(users, batch[sel])
        s = np.array(np.asarray(raw)[sel], dtype=np.float64)
        exclude = self.context(part, view).exclude[batch[sel]]
        if exclude.nnz:
            r, col = exclude.nonzero()
            s[r, col] = -np.inf
        finite = np.isfinite(s)
        c.lo[at] = np.where(finite, s, np.inf).min(1, keepdims=True)
        c.hi[at] = np.where(finite, s, -np.inf).max(1, keepdims=True)
        items, scores = [], []
        for b, members in enumerate(self.buckets):
            sb = s[:, members]
            if len(members) > self.depth:
                top = ranked_top(sb, self.depth + 1)
                c.outside[at, b] = np.take_along_axis(sb, top[:, -1:], axis=1)[:, 0]
                c.first_out[at, b] = members[top[:, -1]]
                top = top[:, : self.depth]
            else:
                top = np.broadcast_to(np.arange(len(members)), sb.shape)
            items.append(members[top])
            scores.append(np.take_along_axis(sb, top, axis=1))
        it, sc = np.concatenate(items, axis=1), np.concatenate(scores, axis=1)
        order = np.lexsort((it, -sc), axis=1)
        c.items[at] = np.take_along_axis(it, order, axis=1)
        c.scores[at] = np.take_along_axis(sc, order, axis=1)

    # ---- lists from the candidates

    def _reranked(
        self, part: str, view: str, cands: Candidates, k: int, c: int, cfg: Any
    ) -> np.ndarray:
        rel = scaled(cands.scores.astype(np.float64), cands.lo, cands.hi)
        bound = scaled(cands.outside, cands.lo, cands.hi)
        if cfg.pop_penalty > 0:
            top = float(self.logpop.max())
            rel = rel - pop_term(self.logpop[cands.items], cfg.pop_penalty, top)
            bound = bound - pop_term(self.least_pop[None, :], cfg.pop_penalty, top)
        order = np.lexsort((cands.items, -rel), axis=1)[:, :c]
        cand = np.take_along_axis(cands.items, order, 1).astype(np.int64)
        crel = np.take_along_axis(rel, order, 1)
        # an outside item beats the c-th candidate only above the bound, or at it with a
        # lower index than the candidate's (and of the items at the bound's score the first
        # is first_out)
        r_c, i_c = crel[:, c - 1 : c], cand[:, c - 1 : c]
        below = (bound < r_c) | ((bound == r_c) & (cands.first_out > i_c))
        ok = (below | (cands.first_out < 0)).all(1)
        out = np.empty((len(cand), min(k, c)), dtype=np.int64)
        out[ok] = mmr(cand[ok], crel[ok], k, self.features, cfg.mmr_lambda)
        if not ok.all():
            out[~ok] = self._rescore(part, view, cands.users[~ok], k, cfg)
        return out

    def _rescore(
        self, part: str, view: str, users: np.ndarray, k: int, rerank_cfg: Any
    ) -> np.ndarray:
        """Lists of ``users`` from their full rows, scored again."""
        self.rescored += len(users)
        exclude = self.context(part, view).exclude
        out = np.empty((len(users), min(k, self.split.n_items)), dtype=np.int64)
        step = self.eval_cfg.batch_size
        for start in range(0, len(users), step):
            batch = users[start : start + step]
            out[start : start + len(batch)] = recommend_lists(
                self.score(batch),
                k,
                exclude=exclude[batch],
                rerank_cfg=rerank_cfg,
                features=self.features,
                item_counts=self.item_counts,
            )
        return out
