"""Large catalogs: scoring in bounded memory gives the same metrics, sparse backbones match
their dense forms, SANSA approximates EASE, ALS/BPR from implicit learn, sparse W exports."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from moo_search.recommender.model.backbones import ease_weights, itemknn_weights
from moo_search.recommender.model.sparse_weights import SparseWeights, itemknn_sparse, user_scores
from moo_search.recommender.trial import run_trial

from ..helpers import tiny_spec

VARIANTS = [{"rerank.pop_penalty": 0.3}, {"rerank.mmr_lambda": 0.6}, {"fusion.serve_alpha": 0.9}]


def _trial(monkeypatch, budget_gb: str, **over):
    monkeypatch.setenv("MOO_SEARCH_SCORES_GB", budget_gb)
    spec = tiny_spec(**{"train.max_steps": 6, **over})
    return run_trial(spec, variants=VARIANTS)


@pytest.mark.parametrize("cf", ["ease", "itemknn"])
def test_chunked_and_unchunked_evaluation_give_identical_metrics(monkeypatch, cf):
    """A budget of 0 keeps no users x items matrix: the backbone's user scores are x_u W per
    batch, the fused scores are recomputed for every variant, and every ranking metric is the
    same. The task features are then z-scored pair by pair (each user's statistics and the
    pair's own score, not the catalog row): the task metrics agree up to float rounding."""
    kept = _trial(monkeypatch, "100", **{"fusion.cf": cf})
    chunked = _trial(monkeypatch, "0", **{"fusion.cf": cf})
    for a, b in [(kept.metrics, chunked.metrics)] + [
        (v["metrics"], w["metrics"]) for v, w in zip(kept.variants, chunked.variants, strict=True)
    ]:
        for part in ("val", "test"):
            assert _ranking(a[part]) == _ranking(b[part])
            task = set(a[part]) - set(_ranking(a[part]))
            assert task and task == set(b[part]) - set(_ranking(b[part]))
            for name in task:
                assert a[part][name] == pytest.approx(b[part][name], abs=1e-4), name
    assert kept.hits == chunked.hits
    # the re-ranked variants are different lists (the comparison is not vacuous)
    assert kept.variants[0]["metrics"]["test"] != kept.metrics["test"]


def _ranking(metrics: dict) -> dict:
    """The ranking metrics of a metrics dict (those cut at some K)."""
    return {k: v for k, v in metrics.items() if "@" in k}


def test_keep_scores_keeps_a_matrix_under_the_budget_and_recomputes_over_it(monkeypatch):
    from moo_search.recommender.memory import keep_scores

    calls = []

    def score(users):
        calls.append(len(users))
        return np.outer(users, np.arange(5)).astype(np.float64)

    monkeypatch.setenv("MOO_SEARCH_SCORES_GB", "1")
    kept = keep_scores(score, 10, 5)
    assert calls == [10]
    np.testing.assert_array_equal(kept(np.array([3, 4])), score(np.array([3, 4])))
    assert kept(np.array([1])).dtype == np.float32
    monkeypatch.setenv("MOO_SEARCH_SCORES_GB", "0")
    calls.clear()
    lazy = keep_scores(score, 10, 5)
    assert calls == []
    lazy(np.array([1, 2]))
    assert calls == [2]


def _planted(n_users=300, n_items=120, seed=0):
    """Users in 4 taste groups, each liking its own quarter of the catalog."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n_users)
    rows, cols = [], []
    for u in range(n_users):
        own = np.arange(group[u] * n_items // 4, (group[u] + 1) * n_items // 4)
        liked = rng.choice(own, 12, replace=False)
        noise = rng.choice(n_items, 3, replace=False)
        for i in {*liked.tolist(), *noise.tolist()}:
            rows.append(u)
            cols.append(i)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def test_sparse_itemknn_is_the_dense_itemknn_without_the_zeros():
    x = _planted()
    x.data = np.random.default_rng(1).random(x.nnz) + 0.5  # no ties at the neighbour cut
    dense = itemknn_weights(x, 20)
    sparse = itemknn_sparse(x, 20, chunk=7)  # chunks that do not divide the catalog
    np.testing.assert_allclose(sparse.factors[0].toarray(), dense, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(user_scores(x[:50], sparse), user_scores(x[:50], dense), atol=1e-5)


def test_sparse_weights_round_trip_restrict_and_rows():
    rng = np.random.default_rng(0)
    a = sp.random(30, 30, density=0.2, random_state=1, format="csr", dtype=np.float32)
    b = sp.random(30, 30, density=0.2, random_state=2, format="csr", dtype=np.float32)
    w = SparseWeights((a, b))
    full = (a @ b).toarray()
    again = SparseWeights.from_arrays(w.arrays())
    x = sp.csr_matrix(rng.random((4, 30)) > 0.7, dtype=np.float32)
    np.testing.assert_allclose(user_scores(x, again), x.toarray() @ full, rtol=1e-5, atol=1e-6)
    idx = np.array([3, 7, 11])
    np.testing.assert_allclose(w.rows(idx), full[idx], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.columns(idx), full[:, idx].T, rtol=1e-5, atol=1e-6)
    keep = np.array([0, 2, 5, 9])
    np.testing.assert_allclose(
        w.restrict(keep).rows(np.arange(4)), full[np.ix_(keep, keep)], rtol=1e-5, atol=1e-6
    )


def test_sansa_approximates_ease_and_ranks_like_it():
    pytest.importorskip("sansa")
    from moo_search.recommender.model.sparse_weights import sansa_weights

    x = _planted()
    ease = user_scores(x, ease_weights(x, 50.0))
    seen = x.toarray() > 0

    def overlap(factorizer: str) -> float:
        approx = user_scores(x, sansa_weights(x, 50.0, 0.5, factorizer=factorizer))
        agree = []
        for u in range(x.shape[0]):
            a = np.where(seen[u], -np.inf, ease[u])
            b = np.where(seen[u], -np.inf, approx[u])
            agree.append(len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10)
        return float(np.mean(agree))

    assert overlap("cholmod") > 0.95  # exact factorization, sparsified: nearly EASE's lists
    assert overlap("icf") > 0.75  # the incomplete one (the default): an approximation


def test_sansa_fits_a_catalog_whose_items_lack_train_interactions():
    """Items with no train interaction (the last one included: sansa's column norms failed on
    an empty last Gramian row) get zero weights; the others are fit as without them."""
    pytest.importorskip("sansa")
    from moo_search.recommender.model.sparse_weights import sansa_weights

    x = _planted().tolil()
    x[:, [0, 57, x.shape[1] - 1]] = 0
    x = x.tocsr()
    x.eliminate_zeros()
    w = sansa_weights(x, 20.0, 0.5)
    assert w.shape == (x.shape[1], x.shape[1])
    scores = user_scores(x, w)
    assert np.all(scores[:, [0, 57, x.shape[1] - 1]] == 0)
    assert np.abs(scores).sum() > 0


def test_a_sparse_backbone_trial_exports_and_serves_its_lists(monkeypatch, tmp_path):
    """ItemKNN kept sparse (forced from 1 item on): the trial, the bundle (CSR factors in
    backbone.safetensors) and the served lists agree; scores are computed per user."""
    import optuna

    import moo_search.recommender.model.backbones as bb
    import moo_search.recommender.model.sparse_weights as sw
    from moo_search import export_trial, load_exported
    from moo_search.drivers import run_study

    for module in (bb, sw):  # the backbone's fit, and the cold items' neighbours in prepare
        monkeypatch.setattr(module, "SPARSE_FROM_ITEMS", 1)
    monkeypatch.setenv("MOO_SEARCH_SCORES_GB", "0")
    spec = tiny_spec(
        **{
            "fusion.cf": "itemknn",
            "train.max_steps": 4,
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/study.db",
            "budget": {"n_trials": 1},
        }
    )
    run_study(spec)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.trials[0].user_attrs["moo:backbone"]["params"]["sparse"] is True
    out = export_trial(tmp_path, out=tmp_path / "bundle", trial=0)
    from safetensors.numpy import load_file

    assert "f0_indptr" in load_file(str(out / "backbone.safetensors"))
    rec = load_exported(out)
    z = np.load(tmp_path / "artifacts" / "trial_00000" / "lists.npz")
    for u, expected in list(zip(z["test_users"], z["test_lists"]))[:40]:
        assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in expected]


def test_als_and_bpr_learn_the_planted_groups_and_are_reproducible():
    from moo_search.recommender.baselines.factors import _fit

    x = _planted().astype(np.float32)
    x = sp.csr_matrix(x)
    for kind, params in (
        ("ALS", {"factors": 16, "regularization": 0.1, "alpha": 10.0}),
        ("BPR", {"factors": 16, "learning_rate": 0.05, "regularization": 0.01}),
    ):
        a, b = _fit(kind, x, params, 0), _fit(kind, x, params, 0)
        users = np.arange(x.shape[0])
        np.testing.assert_array_equal(a(users), b(users))
        scores = np.where(x.toarray() > 0, -np.inf, a(users))
        top = np.argsort(-scores, axis=1)[:, :10]
        group_of_item = np.arange(x.shape[1]) * 4 // x.shape[1]
        own = (x.toarray() > 0) @ np.eye(4)[group_of_item]  # each user's items per group
        hits = (group_of_item[top] == own.argmax(1)[:, None]).mean()
        assert hits > 0.6, (kind, hits)  # popularity alone would give ~0.25


def test_content_knn_over_the_dense_budget_scores_like_the_dense_one(monkeypatch):
    from moo_search.recommender.model.content import content_knn

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(120, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    x = _planted()
    warm = np.ones(120, dtype=bool)
    warm[::7] = False  # held-out items are nobody's neighbour
    users = np.arange(x.shape[0])
    dense = content_knn(vectors, x, warm, neighbours=10)(users)
    monkeypatch.setenv("MOO_SEARCH_DENSE_GB", "0")
    sparse = content_knn(vectors, x, warm, neighbours=10)(users)
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dense"):
        content_knn(vectors, x, warm, neighbours=None)


def test_a_large_catalog_without_the_scale_extra_records_no_ease_like_baseline(monkeypatch):
    """Over the dense budget SANSA replaces EASE; without the sansa package neither is
    recorded (a warning names the extra) instead of the study failing."""
    import sys

    from moo_search.recommender.baselines.ranking import baseline_names
    from moo_search.recommender.data import load_split

    _, split = load_split(tiny_spec().data)
    assert "EASE" in baseline_names(split) and "SANSA" not in baseline_names(split)
    monkeypatch.setenv("MOO_SEARCH_DENSE_GB", "0")
    names = baseline_names(split)
    assert "SANSA" in names and "EASE" not in names
    monkeypatch.setitem(sys.modules, "sansa", None)  # importing it now fails
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    names = baseline_names(split)
    assert "SANSA" not in names and "EASE" not in names and "ItemKNN" in names


@pytest.mark.parametrize("variable", ["MOO_SEARCH_SCORES_GB", "MOO_SEARCH_DENSE_GB"])
@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_memory_knob_that_is_not_a_size_is_named_before_any_trial(
    monkeypatch, tmp_path, variable, value
):
    import optuna

    from moo_search import SpecError
    from moo_search.drivers import run_study

    monkeypatch.setenv(variable, value)
    spec = tiny_spec(
        **{"storage": f"sqlite:///{tmp_path}/s.db", "out_dir": str(tmp_path), "budget.n_trials": 1}
    )
    with pytest.raises(SpecError, match=f"{variable}='{value}': expected a number of GiB"):
        run_study(spec)
    assert optuna.load_study(study_name="tiny", storage=spec.storage).trials == []


def test_the_dense_budget_holds_for_a_cached_backbone_too(monkeypatch):
    from moo_search import SpecError

    spec = tiny_spec(**{"train.max_steps": 2, "fusion.cf": "ease"})
    run_trial(spec)  # fitted and cached within the default budget
    monkeypatch.setenv("MOO_SEARCH_DENSE_GB", "1e-6")  # under one 120 x 120 float64 matrix
    with pytest.raises(SpecError, match="MOO_SEARCH_DENSE_GB"):
        run_trial(spec)


def test_the_dense_last_product_scores_as_the_sparse_one_and_row_by_row(monkeypatch):
    """SparseWeights.score takes its last product as last^T @ dense rows where that is
    cheaper: the same scores as SciPy's sparse product (up to float rounding), each row the
    same whatever batch it is scored in; pair_scores gives the rows' values at the pairs."""
    import moo_search.recommender.model.sparse_weights as swm

    rng = np.random.default_rng(3)
    a = sp.random(60, 60, density=0.3, random_state=4, format="csr", dtype=np.float32)
    b = sp.random(60, 60, density=0.3, random_state=5, format="csr", dtype=np.float32)
    w = SparseWeights((a, b))
    x = sp.csr_matrix(rng.random((40, 60)) > 0.8, dtype=np.float32)
    monkeypatch.setattr(swm, "SPARSE_WORK_RATIO", 0)  # never dense
    sparse_way = w.score(x)
    monkeypatch.setattr(swm, "SPARSE_WORK_RATIO", 10**9)  # always dense
    assert swm._dense_is_cheaper(sp.csr_matrix(x) @ a, b)
    dense_way = w.score(x)
    np.testing.assert_allclose(dense_way, x.toarray() @ (a @ b).toarray(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense_way, sparse_way, rtol=1e-5, atol=1e-6)
    one_by_one = np.vstack([w.score(x[u : u + 1]) for u in range(x.shape[0])])
    np.testing.assert_array_equal(one_by_one, dense_way)
    items = rng.integers(0, 60, size=40)
    np.testing.assert_allclose(
        w.pair_scores(x, items), dense_way[np.arange(40), items], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("with_warm", [False, True])
def test_pairwise_z_scores_are_the_rows_z_scores(with_warm):
    """Where the backbone's rows are not kept, a pair's z-score comes from the user's row
    statistics (scored once) and the pair's own score; the text score's from the Gram matrix:
    both equal the catalog rows' z-scores."""
    import torch

    from moo_search.recommender.model.cf_towers import ClosedFormTower
    from moo_search.recommender.zscore import GramZ, standardise

    x = _planted(n_users=80, n_items=50)
    rng = np.random.default_rng(0)
    warm = torch.as_tensor(rng.random(50) > 0.2) if with_warm else None
    users = torch.as_tensor(rng.integers(0, 80, size=300))
    items = torch.as_tensor(rng.integers(0, 50, size=300))
    for w in (ease_weights(x, 20.0), itemknn_sparse(x, 10)):
        kept = ClosedFormTower(w, user_scores(x, w), None)
        rows = ClosedFormTower(w, None, x)
        assert kept.pair_z(users, items, warm) is None  # its rows are a lookup
        want = standardise(kept(torch.arange(80)).float(), warm)[users, items]
        got = rows.pair_z(users, items, warm)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        asked = np.isin(np.arange(80), users.numpy())
        assert np.isfinite(rows._stats[asked]).all()  # the users asked for are remembered
        assert np.isnan(rows._stats[~asked]).all()  # and no other user was scored
    emb = torch.as_tensor(rng.normal(size=(50, 8)), dtype=torch.float32)
    u_vec = torch.as_tensor(rng.normal(size=(80, 8)), dtype=torch.float32)
    want = standardise((u_vec.double() @ emb.double().T).float(), warm)[users, items]
    got = GramZ(emb, warm).at(u_vec[users], items)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
