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
