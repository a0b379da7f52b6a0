"""Multi-objective early stopping: Pareto-rank successive halving at rungs, through the real
drivers and storage."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.drivers._pruning import stays
from moo_search.pareto import successive_halving_keeps
from moo_search.study import ATTR, count_states, load_study

from .helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
MAX = ["maximize", "maximize"]


def test_halving_keeps_the_best_ranks_and_ignores_order():
    # ranks: (3,3) front 0; (2,2) front 1; (1,1), (0.5, 2) front 2 -> ...
    F = np.array([[3, 3], [2, 2], [1, 1], [0.5, 0.4], [0.1, 0.1], [0.2, 0.0]], dtype=float)
    keeps = [successive_halving_keeps(F, i, MAX, eta=3, min_points=4) for i in range(len(F))]
    assert keeps == [True, True, False, False, False, False]  # ceil(6 / 3) = 2 go on
    for perm in itertools.islice(itertools.permutations(range(len(F))), 50):
        G = F[list(perm)]
        got = [successive_halving_keeps(G, i, MAX, eta=3, min_points=4) for i in range(len(G))]
        assert got == [keeps[p] for p in perm]


def test_a_rank_group_at_the_cut_survives_whole_and_small_rungs_stop_nothing():
    F = np.array([[1, 0], [0, 1], [0.5, 0.5], [0.1, 0.1]], dtype=float)  # three on the front
    assert [successive_halving_keeps(F, i, MAX, eta=3, min_points=2) for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert successive_halving_keeps(F[:1], 0, MAX, eta=3, min_points=2)


def _fake_run_trial(spec, *, artifact_dir=None, variants=None, on_rung=None):
    """A trial whose quality is its learning rate (no model): it reports one rung at step
    10, then finishes with the same values."""
    x = float(spec.train.lr)
    metrics = {"precision@10": x, "ild@10": x}
    if on_rung is not None:
        on_rung(10, {"val": dict(metrics)}, {"seconds": 0.0})
    return SimpleNamespace(
        metrics={"val": metrics, "test": dict(metrics)},
        cost={"seconds": 0.0},
        variants=[],
        backbone={},
        hits={},
    )  # what run_trial's result carries


@pytest.fixture
def fake_trials(monkeypatch):
    import moo_search.recommender.trial as trial_mod

    monkeypatch.setattr(trial_mod, "run_trial", _fake_run_trial)


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_dominated_trials_stop_pruned_with_their_reason_and_do_not_count(
    fake_trials, backend, tmp_path
):
    lrs = [0.9, 0.8, 0.1, 0.05, 0.7, 0.02, 0.6, 0.01]  # some far behind at their rung
    spec = tiny_spec(
        **{
            "out_dir": str(tmp_path),
            "storage": f"sqlite:///{tmp_path}/s.db",
            "search_space": {"train.lr": {"float": [1e-3, 1.0]}},
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "ild@10", "direction": "maximize"},
            ],
            "enqueue": [{"name": f"lr{i}", "train.lr": lr} for i, lr in enumerate(lrs)],
            "driver": {
                "backend": backend,
                "population": 4,
                "early_stopping": {"enabled": True, "eta": 2, "min_trials": 3, "rungs": [0.25]},
            },
            "budget": {"n_trials": 5},
        }
    )
    study = run_study(spec)
    counts = count_states(study)
    assert counts["COMPLETE"] == 5  # the budget counts finished fine-tunes only
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    # (a proposal repeating a finished trial is recorded PRUNED too, without running)
    pruned = [t for t in pruned if "parameters again" not in t.user_attrs[ATTR.FAIL]]
    assert pruned, "some trial far behind at its rung must stop"
    for t in pruned:
        assert t.user_attrs[ATTR.PRUNED_AT] == 10
        assert "stopped at rung 10/40 steps" in t.user_attrs[ATTR.FAIL]
        assert "successive halving" in t.user_attrs[ATTR.FAIL]
        assert t.user_attrs[ATTR.RUNGS]["10"] == [t.params["train.lr"]] * 2
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert [p["step"] for p in t.user_attrs[ATTR.CURVE]] == [10, 40]  # rung, then final
    # nothing that reached the rung with the best vector so far was stopped
    assert all(t.params["train.lr"] < 0.6 for t in pruned)


def test_rung_decisions_are_the_same_from_any_worker(fake_trials, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    spec = tiny_spec(
        **{
            "out_dir": str(tmp_path),
            "search_space": {"train.lr": {"float": [1e-3, 1.0]}},
            "driver": {"early_stopping": {"enabled": True, "eta": 2, "min_trials": 2}},
            "budget": {"n_trials": 6},
        }
    )
    run_study(spec, storage=url)
    a, b = load_study(url), load_study(url)  # two connections, as two hosts would have
    for values in ([0.5, 0.5], [0.01, 0.01], [0.99, 0.001]):
        da = stays(a, 999, 10, values, MAX, eta=2, min_trials=2)
        db = stays(b, 999, 10, values, MAX, eta=2, min_trials=2)
        assert da == db


def test_a_real_trial_reports_its_rungs_on_a_fixed_user_sample(tmp_path):
    from moo_search.recommender.trial import run_trial

    seen: list[tuple[int, dict]] = []
    spec = tiny_spec(**{"train.max_steps": 12, "driver.early_stopping": {"rungs": [0.25, 0.5]}})
    run_trial(spec, on_rung=lambda step, m, cost: seen.append((step, m)))
    assert [s for s, _ in seen] == [3, 6]
    assert all("precision@10" in m["val"] and "ild@10" in m["val"] for _, m in seen)
