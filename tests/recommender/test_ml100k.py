"""Slow tier: the real MovieLens-100K (fetched into the cache) and the reference baselines."""

from __future__ import annotations

import pytest

from moo_search.cli import main

from ..conftest import REPO

pytestmark = pytest.mark.slow


def test_fetch_and_info_report_the_known_counts(capsys):
    assert main(["data", "fetch", "movielens-100k"]) == 0
    assert main(["data", "info", "movielens-100k"]) == 0
    out = capsys.readouterr().out
    assert "users         943" in out
    assert "items         1,682" in out
    assert "interactions  100,000" in out


def test_baselines_table_and_bpr_beats_mostpop_on_test(capsys):
    import json

    assert main(["baselines", str(REPO / "studies" / "quickstart.yaml"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {"Random", "MostPop", "BPR", "EASE", "LikeRate"}
    for name in set(res) - {"LikeRate", "Counts"}:
        for m in ("precision@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10", "click_auc"):
            assert m in res[name]["test"]
    # the business tasks' count baselines: popularity, like-rates, mean ratings
    counts = res["Counts"]["test"]
    assert (
        counts["click_auc"] > 0.7 and counts["conversion_auc"] == res["LikeRate"]["test"]["ctr_auc"]
    )
    assert 0.8 < counts["satisfaction_rmse"] < 1.2
    # EASE (lambda tuned on validation) is the strongest classic method here; the count
    # CTR baseline is far from random
    assert res["EASE"]["test"]["ndcg@10"] > res["BPR"]["test"]["ndcg@10"]
    assert res["LikeRate"]["test"]["ctr_auc"] > 0.7
    assert res["BPR"]["test"]["precision@10"] > res["MostPop"]["test"]["precision@10"]
    assert res["MostPop"]["test"]["precision@10"] > res["Random"]["test"]["precision@10"]


def test_lists_from_a_score_book_are_the_full_rows_lists_on_movielens():
    """Score once, rank many, on MovieLens-100K: EASE's scores re-ranked at the reference
    grid's corners and middle give, from the book's candidates, the full rows' lists; the
    users whose candidates cannot decide are scored again (counted), not approximated."""
    import numpy as np

    from moo_search.recommender.candidates import ScoreBook
    from moo_search.recommender.config import RerankConfig
    from moo_search.recommender.inference import recommend_lists
    from moo_search.recommender.model.backbones import ease_weights
    from moo_search.recommender.prepare import prepare_data
    from moo_search.spec import load_spec

    spec = load_spec(REPO / "studies" / "quickstart.yaml")
    data = prepare_data(spec)
    split, features = data.split, data.features
    x = split.matrix("train").astype(np.float64).tocsr()
    table = np.asarray(x @ ease_weights(x, 200.0), dtype=np.float32)
    _, counts = split.train_counts()
    book = ScoreBook(lambda u: table[u], split, features, spec.eval, depth=100)
    asked = 0
    for cfg in (
        None,
        RerankConfig(pop_penalty=0.1),
        RerankConfig(pop_penalty=0.5),
        RerankConfig(pop_penalty=1.0),
        RerankConfig(mmr_lambda=0.5),
        RerankConfig(mmr_lambda=0.7, pop_penalty=0.2),
    ):
        for part in ("val", "test"):
            ctx = book.context(part)
            users = ctx.users
            want = recommend_lists(
                table[users],
                20,
                exclude=ctx.exclude[users],
                rerank_cfg=cfg,
                features=features,
                item_counts=counts,
            )
            assert np.array_equal(book.lists(part, "warm", 20, cfg), want), (cfg, part)
            asked += len(users)
    assert book.rescored < asked / 2  # most lists came from the candidates
