"""Each metric against a small hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from moo_search.recommender import metrics as M


def _rel(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_ranking_metrics_hand_computed():
    # user 0: list [0,1,2], relevant {1, 5}; user 1: list [3,4,5], relevant {3}
    lists = np.array([[0, 1, 2], [3, 4, 5]])
    rel = _rel([[1, 5], [3]], 6)
    out = M.ranking_metrics(lists, np.array([0, 1]), rel, 3)
    assert out["precision@3"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert out["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    dcg0 = 1 / math.log2(3)
    idcg0 = 1 + 1 / math.log2(3)
    assert out["ndcg@3"] == pytest.approx((dcg0 / idcg0 + 1.0) / 2)
    assert out["hit@3"] == 1.0
    assert out["mrr@3"] == pytest.approx((1 / 2 + 1) / 2)


def test_topk_excludes_seen_items_and_orders_best_first():
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    assert M.topk(scores, 2, exclude).tolist() == [[1, 3]]


def test_ild_uses_feature_cosine():
    feats = np.array([[1, 0], [1, 0], [0, 1]], dtype=float)
    # pairs (0,1): sim 1 -> 0; (0,2): 1; (1,2): 1 -> mean 2/3
    assert M.ild(np.array([[0, 1, 2]]), feats) == pytest.approx(2 / 3)
    assert M.ild(np.array([[0, 1]]), feats) == pytest.approx(0.0)


def test_novelty_is_mean_self_information_with_unseen_items():
    item_users = np.array([4, 1, 0])  # 4 train users
    # -log2(4/4)=0, -log2(1/4)=2, unseen: -log2(1/5)
    expected = (0 + 2 + math.log2(5)) / 3
    assert M.novelty(np.array([[0, 1, 2]]), item_users, 4) == pytest.approx(expected)


def test_coverage_tail_share_gini():
    lists = np.array([[0, 1], [0, 2]])
    assert M.coverage(lists, 4) == pytest.approx(3 / 4)
    head = M.head_items(np.array([8, 1, 1, 0]), 0.8)
    assert head.tolist() == [True, False, False, False]
    assert M.tail_share(lists, head) == pytest.approx(2 / 4)
    # exposure [2,1,1,0] sorted [0,1,1,2]: sum((2i-n-1)x)/(n*sum) = (-3*0-1*1+1*1+3*2)/(4*4)
    assert M.gini(lists, 4) == pytest.approx(6 / 16)
    assert M.gini(np.array([[0], [1], [2], [3]]), 4) == pytest.approx(0.0)


def test_auc_and_logloss():
    y = np.array([0, 0, 1, 1])
    assert M.auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert M.auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(M.auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert M.logloss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


def test_evaluate_topk_slices_and_evaluated_users():
    rel = _rel([[1], [], [3]], 5)
    ctx = M.EvalContext(
        relevant=rel,
        exclude=sp.csr_matrix((3, 5)),
        features=np.eye(5),
        item_users=np.array([5, 4, 1, 1, 0]),
        n_train_users=5,
        head=np.array([True, True, False, False, False]),
        cold_users=np.array([False, False, True]),
    )
    users = ctx.users
    assert users.tolist() == [0, 2]  # user 1 has no relevant item
    lists = np.array([[1, 2], [3, 0]])
    out = M.evaluate_topk(lists, users, ctx, 2)
    assert out["precision@2"] == pytest.approx(0.5)
    assert out["cold/precision@2"] == pytest.approx(0.5)  # only user 2
    # tail slice: relevant tail items -> only user 2 (item 3)
    assert out["tail/recall@2"] == pytest.approx(1.0)


def test_paired_bootstrap_separates_a_real_difference_from_noise():
    rng = np.random.default_rng(1)
    base = rng.binomial(10, 0.07, 800).astype(float)  # hits per user, as precision@10 counts
    noise = base + rng.choice([-1.0, 0.0, 1.0], 800)  # the same model, other lucky users
    better = base + rng.binomial(1, 0.3, 800)  # 0.3 more hits per user
    mean, lo, hi = M.paired_bootstrap(noise, base)
    assert lo < 0 < hi and lo < mean < hi
    mean, lo, hi = M.paired_bootstrap(better, base)
    assert 0 < lo < mean < hi and mean == pytest.approx(0.3, abs=0.06)
    assert M.paired_bootstrap(base, base) == (0.0, 0.0, 0.0)  # identical lists: no doubt
    with pytest.raises(ValueError, match="equal-length"):
        M.paired_bootstrap(base, base[:-1])


def test_user_hits_count_relevant_and_tail_items_in_each_list():
    rel = _rel([[0, 1, 5], [2], [4, 5]], 6)
    ctx = M.EvalContext(
        relevant=rel,
        exclude=sp.csr_matrix((3, 6)),
        features=np.eye(6),
        item_users=np.array([9, 8, 7, 1, 1, 1]),
        n_train_users=10,
        head=np.array([True, True, True, False, False, False]),
        cold_users=np.zeros(3, dtype=bool),
    )
    lists = np.array([[5, 0, 3], [1, 3, 4], [4, 5, 0]])
    hits = M.user_hits(lists, ctx.users, ctx)
    assert hits["all"].tolist() == [2, 0, 2] and hits["tail"].tolist() == [1, 0, 2]
    assert ctx.has_tail(ctx.users).tolist() == [True, False, True]


def test_packed_counts_round_trip_and_refuse_what_does_not_fit():
    from moo_search.study import pack_counts, unpack_counts

    a = np.array([0, 3, 10, 255, 1])
    assert unpack_counts(pack_counts(a)).tolist() == a.tolist()
    with pytest.raises(ValueError, match="0..255"):
        pack_counts(np.array([1, 256]))
