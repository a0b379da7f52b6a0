"""Multi-objective early stopping: Pareto-rank successive halving at rungs, through the real
drivers and storage."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from moo_search.drivers import run_study
from moo_search.drivers._pruning import stays
from moo_search.pareto import successive_halving_keeps
from moo_search.study import ATTR, count_states, load_study

from ..helpers import stepped_spec

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


@pytest.mark.parametrize("backend", ["optuna", "pymoo"])
def test_dominated_trials_stop_pruned_with_their_reason_and_do_not_count(backend, tmp_path):
    xs = [0.9, 0.8, 0.1, 0.05, 0.7, 0.02, 0.6, 0.01]  # some far behind at their rung
    spec = stepped_spec(
        n_trials=5,
        backend=backend,
        out_dir=str(tmp_path),
        storage=f"sqlite:///{tmp_path}/s.db",
        enqueue=[{"name": f"x{i}", "x": x} for i, x in enumerate(xs)],
        driver={"early_stopping": {"enabled": True, "eta": 2, "min_trials": 3, "rungs": [0.25]}},
    )
    study = run_study(spec)
    counts = count_states(study)
    assert counts["COMPLETE"] == 5  # the budget counts finished trials only
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    # (a proposal repeating a finished trial is recorded PRUNED too, without running)
    pruned = [t for t in pruned if "parameters again" not in t.user_attrs[ATTR.FAIL]]
    assert pruned, "some trial far behind at its rung must stop"
    for t in pruned:
        assert t.user_attrs[ATTR.PRUNED_AT] == 10
        assert "stopped at rung 10/40 steps" in t.user_attrs[ATTR.FAIL]
        assert "successive halving" in t.user_attrs[ATTR.FAIL]
        assert t.user_attrs[ATTR.RUNGS]["10"] == [t.params["x"]] * 2
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert [p["step"] for p in t.user_attrs[ATTR.CURVE]] == [10, 40]  # rung, then final
        assert (Path(t.user_attrs[ATTR.ARTIFACTS]) / "model.txt").is_file()  # its artifacts
    # nothing that reached the rung with the best vector so far was stopped
    assert all(t.params["x"] < 0.6 for t in pruned)


def test_rung_decisions_are_the_same_from_any_worker(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    spec = stepped_spec(
        n_trials=6,
        out_dir=str(tmp_path),
        driver={"early_stopping": {"enabled": True, "eta": 2, "min_trials": 2}},
    )
    run_study(spec, storage=url)
    a, b = load_study(url), load_study(url)  # two connections, as two hosts would have
    for values in ([0.5, 0.5], [0.01, 0.01], [0.99, 0.001]):
        da = stays(a, 999, 10, values, MAX, eta=2, min_trials=2)
        db = stays(b, 999, 10, values, MAX, eta=2, min_trials=2)
        assert da == db
