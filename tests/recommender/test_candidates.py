"""Score once, rank many: lists drawn from a ScoreBook's candidates are the full rows' lists,
each user is scored once per part, and a user whose candidates cannot decide a re-ranked
list is scored again in full."""

from __future__ import annotations

import numpy as np
import pytest

from moo_search.recommender.candidates import ScoreBook
from moo_search.recommender.config import EvalConfig, RerankConfig
from moo_search.recommender.evaluate import cold_item_lists, evaluate_lists
from moo_search.recommender.inference import recommend_lists
from moo_search.recommender.metrics import EvalContext, topk
from moo_search.recommender.prepare import prepare_data

from ..helpers import tiny_spec

COLD = {"data.split.cold_items": 0.2, "data.split.cold_seed": 3}
SETTINGS = [
    None,
    RerankConfig(pop_penalty=0.1, candidates=20),
    RerankConfig(pop_penalty=0.5, candidates=20),
    RerankConfig(pop_penalty=3.0, candidates=20),
    RerankConfig(mmr_lambda=0.6, candidates=20),
    RerankConfig(mmr_lambda=0.5, pop_penalty=0.3, candidates=30),
    RerankConfig(pop_penalty=0.5, candidates=10),  # within a depth of 12: from the candidates
    RerankConfig(mmr_lambda=0.6, pop_penalty=0.2, candidates=8),
]


@pytest.fixture(scope="module", params=["warm", "cold"])
def data(request):
    return prepare_data(tiny_spec(**(COLD if request.param == "cold" else {})))


class Counting:
    """A score table as a scorer that counts the rows it was asked for."""

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.rows = table, 0

    def __call__(self, users: np.ndarray) -> np.ndarray:
        self.rows += len(users)
        return self.table[users]


def _table(split, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (split.n_users, split.n_items)
    if kind == "ties":  # few distinct values: every cut falls inside a tie
        return rng.integers(0, 4, shape).astype(np.float32)
    # a popularity-following score, so that the penalty reorders
    _, counts = split.train_counts()
    return (rng.normal(size=shape) + 0.3 * np.log1p(counts)).astype(np.float32)


def _full(table, split, features, part, view, k, cfg):
    ctx = EvalContext.from_split(split, part, features, view=view)
    users = ctx.users
    _, counts = split.train_counts()
    lists = recommend_lists(
        table[users],
        k,
        exclude=ctx.exclude[users],
        rerank_cfg=cfg,
        features=features,
        item_counts=counts,
    )
    return users, lists


@pytest.mark.parametrize("kind", ["normal", "ties"])
@pytest.mark.parametrize("depth", [3, 12, 40])
def test_lists_from_the_book_are_the_full_rows_lists(data, kind, depth):
    split, features = data.split, data.features
    table = _table(split, kind)
    book = ScoreBook(Counting(table), split, features, EvalConfig(batch_size=7), depth=depth)
    views = ["warm", "mixed"] if split.has_cold_items else ["warm"]
    for part in ("val", "test"):
        for view in views:
            for cfg in SETTINGS:
                for k in (1, 3, 10):
                    users, want = _full(table, split, features, part, view, k, cfg)
                    assert np.array_equal(book.users(part, view), users)
                    got = book.lists(part, view, k, cfg)
                    assert np.array_equal(got, want), (part, view, cfg, k)
        if split.has_cold_items:
            users, lists, _ = cold_item_lists(lambda u: table[u], split, part, 10)
            b_users, b_lists, _ = book.cold_lists(part, 10)
            assert np.array_equal(users, b_users) and np.array_equal(lists, b_lists)
    if depth == 12 and kind == "normal":  # not every item a candidate: only the settings
        assert not book.complete  # deeper than the book were scored again
        asked = sum(len(book.users(p, v)) for p in ("val", "test") for v in views)
        reranked = asked * 3 * (len(SETTINGS) - 1)
        assert 0 < book.rescored < reranked / 2  # most from the candidates, some rescored


def test_each_user_is_scored_once_per_part_whatever_is_ranked(data):
    split, features = data.split, data.features
    scorer = Counting(_table(split, "normal"))
    book = ScoreBook(scorer, split, features, EvalConfig(), depth=40)
    for cfg in SETTINGS[:3] + SETTINGS[4:]:  # a penalty the candidates can decide
        evaluate_lists(
            scorer, None, split, eval_cfg=EvalConfig(), rerank_cfg=cfg, features=features, book=book
        )
    users = set()
    for part in ("val", "test"):
        users |= {(part, u) for u in book.users(part, "warm")}
        if split.has_cold_items:
            users |= {(part, u) for u in book.users(part, "mixed")}
            users |= {(part, u) for u in book.cold_lists(part, 1)[0]}
    assert book.rescored == 0
    assert scorer.rows == len(users)  # once per (part, user), however many lists and views


def test_a_penalty_that_promotes_an_item_from_outside_the_candidates_is_rescored(data):
    """The least popular items score just below every user's candidates; a heavy popularity
    penalty lifts them into the re-ranked list. The bound sees it: those users are scored
    again, and the lists are the full rows' lists."""
    split, features = data.split, data.features
    _, counts = split.train_counts()
    table = np.tile(np.log1p(counts).astype(np.float32) + 10.0, (split.n_users, 1))
    rare = np.argsort(counts, kind="stable")[:: max(1, split.n_items // 30)][:5]
    table[:, rare] = 9.99  # below every other item: never a raw candidate but of the buckets'
    table += np.random.default_rng(1).normal(0, 1e-3, table.shape).astype(np.float32)
    depth = 4
    book = ScoreBook(lambda u: table[u], split, features, EvalConfig(), depth=depth)
    cfg = RerankConfig(pop_penalty=5.0, candidates=depth)
    users, want = _full(table, split, features, "val", "warm", 3, cfg)
    raw_top = topk(table[users], 4 * depth)
    assert not np.isin(want, raw_top).all()  # promoted from beyond the raw top items
    assert np.array_equal(book.lists("val", "warm", 3, cfg), want)
    assert book.rescored > 0


def test_a_depth_below_a_request_scores_again_and_still_matches(data):
    split, features = data.split, data.features
    table = _table(split, "normal", seed=2)
    book = ScoreBook(lambda u: table[u], split, features, EvalConfig(), depth=2)
    cfg = RerankConfig(pop_penalty=0.2, candidates=25)
    assert np.array_equal(
        book.lists("test", "warm", 10, cfg),
        _full(table, split, features, "test", "warm", 10, cfg)[1],
    )
    assert book.rescored == len(book.users("test", "warm"))
