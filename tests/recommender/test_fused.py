"""Trials fine-tuned together over one frozen base (driver.fuse): each gets its solo run's
metrics, a member that fails or is stopped leaves the others as they were."""

from __future__ import annotations

import pytest

from moo_search.errors import TrialFailed
from moo_search.recommender.registries import LOSS_TERMS
from moo_search.recommender.train.terms import LossTerm
from moo_search.recommender.trial import run_trial
from moo_search.recommender.trial_fused import TrialRequest, run_trials_together
from tests.helpers import tiny_spec

# no dropout anywhere: a fused pass draws its masks over the fused batch (see train/fused.py)
QUIET = {"model.dropout": 0.0, "adapter.dropout": 0.0}
# configurations whose own metrics differ by more than the tolerance: ranks, a learning rate,
# each adapter type, another loss
CONFIGS = [
    {"adapter.r": 2},
    {"adapter.r": 8, "train.lr": 1e-2},
    {"adapter.type": "ia3"},
    {"adapter.type": "dora", "adapter.r": 4},
    {"loss.weights.diversity": 0.5},
]
TOL = 1e-3  # a ranking tie (precision, ndcg, novelty)
COMPARED = ("precision@10", "ndcg@10", "novelty@10", "recall@10", "ild@10")


def _spec(kw):
    quiet = {
        k: v for k, v in QUIET.items() if not (kw.get("adapter.type") == "ia3" and "adapter" in k)
    }
    return tiny_spec(**{**quiet, **kw, "train.max_steps": 30})


def _same(a, b, tol=TOL):
    for part in ("val", "test"):
        for k in COMPARED:
            assert abs(a.metrics[part][k] - b.metrics[part][k]) <= tol, (part, k)


@pytest.fixture(scope="module")
def solo():
    return [run_trial(_spec(kw)) for kw in CONFIGS]


def test_fused_trials_get_their_solo_metrics(solo):
    for i, a in enumerate(solo):  # every two configurations differ by more than the tolerance
        for b in solo[i + 1 :]:
            assert max(abs(a.metrics["val"][k] - b.metrics["val"][k]) for k in COMPARED) > TOL
    fused = run_trials_together([TrialRequest(_spec(kw)) for kw in CONFIGS])
    for s, f in zip(solo, fused, strict=True):
        assert not isinstance(f, BaseException), f
        _same(s, f)
        assert f.cost["fused_trials"] == len(CONFIGS)
        assert "fused_trials" not in s.cost
        assert f.history["loss"][0] == pytest.approx(s.history["loss"][0], rel=1e-5)
        assert f.cost["train_tokens"] == s.cost["train_tokens"]  # counted once, as alone
        assert 0 < f.cost["train_seconds"] <= f.cost["seconds"]


def test_the_group_holds_one_copy_of_the_base(monkeypatch):
    import moo_search.recommender.trial_fused as tf
    from moo_search.recommender.model.encoder import unwrapped

    seen = []
    real = tf._fit_group

    def spy(trials, group, out, own):
        seen.append([trials[k].model for k in group])
        real(trials, group, out, own)

    monkeypatch.setattr(tf, "_fit_group", spy)
    run_trials_together([TrialRequest(_spec(kw)) for kw in CONFIGS[:3]])
    [models] = seen
    frozen = [
        {
            n.replace(".base_layer", ""): p.data_ptr()
            for n, p in unwrapped(m.encoder).named_parameters()
            if not p.requires_grad
        }
        for m in models
    ]
    assert frozen[0] == frozen[1] == frozen[2]


def test_trials_that_cannot_share_a_pass_train_in_groups_of_their_own(solo, monkeypatch):
    import moo_search.recommender.trial_fused as tf

    sizes = []
    real = tf._fit_group
    monkeypatch.setattr(
        tf, "_fit_group", lambda t, g, o, w: (sizes.append(len(g)), real(t, g, o, w))
    )
    other = _spec({"adapter.r": 2, "model.max_item_length": 8})  # another tokenisation
    alone = run_trial(other)
    fused = run_trials_together(
        [TrialRequest(_spec(CONFIGS[0])), TrialRequest(other), TrialRequest(_spec(CONFIGS[2]))]
    )
    assert sorted(sizes) == [1, 2]
    _same(solo[0], fused[0])
    _same(alone, fused[1])
    _same(solo[2], fused[2])


def test_a_member_that_fails_leaves_the_others_unchanged(solo):
    calls = {"n": 0}

    def boom(batch):
        calls["n"] += 1
        return batch.fused.sum() * (float("nan") if calls["n"] > 3 else 0.0)

    LOSS_TERMS.register("boom", LossTerm(fn=boom))
    try:
        bad = _spec({"adapter.r": 4, "loss.weights.boom": 1.0})
        fused = run_trials_together(
            [TrialRequest(_spec(CONFIGS[0])), TrialRequest(bad), TrialRequest(_spec(CONFIGS[1]))]
        )
    finally:
        LOSS_TERMS.unregister("boom")
    assert isinstance(fused[1], TrialFailed)
    assert "loss became nan at step 3" in str(fused[1])
    _same(solo[0], fused[0], tol=0.0)
    _same(solo[1], fused[2], tol=0.0)


def test_a_member_stopped_at_its_rung_leaves_the_others_unchanged(solo):
    class Stop(Exception):
        pass

    rungs = []

    def stop(step, metrics, cost):
        rungs.append((step, metrics["val"]["precision@10"]))
        raise Stop(f"stopped at {step}")

    pruned = _spec({"adapter.r": 8, "driver.early_stopping.rungs": [0.5]})
    fused = run_trials_together(
        [
            TrialRequest(_spec(CONFIGS[0])),
            TrialRequest(pruned, on_rung=stop),
            TrialRequest(_spec(CONFIGS[2])),
        ]
    )
    assert isinstance(fused[1], Stop) and str(fused[1]) == "stopped at 15"
    assert rungs and rungs[0][0] == 15
    _same(solo[0], fused[0], tol=0.0)
    _same(solo[2], fused[2], tol=0.0)


def test_a_config_error_fails_that_trial_only(solo):
    from moo_search.errors import SpecError

    bad = _spec({"adapter.target_modules": ["qury"]})
    fused = run_trials_together([TrialRequest(bad), TrialRequest(_spec(CONFIGS[0]))])
    assert isinstance(fused[0], SpecError) and "qury" in str(fused[0])
    _same(solo[0], fused[1], tol=0.0)


def test_a_fused_trial_writes_its_own_artifacts(tmp_path, solo):
    import json

    fused = run_trials_together(
        [
            TrialRequest(_spec(kw), artifact_dir=tmp_path / f"t{i}")
            for i, kw in enumerate(CONFIGS[:2])
        ]
    )
    for i, r in enumerate(fused):
        assert r.artifact_dir == str(tmp_path / f"t{i}")
        saved = json.loads((tmp_path / f"t{i}" / "metrics.json").read_text())
        assert saved["metrics"]["val"]["precision@10"] == pytest.approx(
            solo[i].metrics["val"]["precision@10"]
        )
        assert saved["cost"]["fused_trials"] == 2


def _study_spec(tmp_path, name, fuse, **extra):
    return tiny_spec(
        **{
            **QUIET,
            "train.max_steps": 12,
            "out_dir": str(tmp_path / name),
            "storage": f"sqlite:///{tmp_path}/{name}.db",
            "search_space": {
                "adapter.r": {"categorical": [2, 4, 8]},
                "train.lr": {"float": [1e-3, 1e-2], "log": True},
                "loss.weights.diversity": {"float": [0.0, 1.0]},
            },
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "ild@10", "direction": "maximize"},
            ],
            "driver.algorithm": "random",
            "driver.fuse": fuse,
            "budget": {"n_trials": 4},
            **extra,
        }
    )


def test_a_fused_study_stores_each_trial_as_its_solo_run(tmp_path):
    from optuna.trial import TrialState

    from moo_search.drivers import run_study
    from moo_search.study import ATTR

    alone = run_study(_study_spec(tmp_path, "alone", 1))
    together = run_study(_study_spec(tmp_path, "together", 4))
    a = [t for t in alone.trials if t.state == TrialState.COMPLETE]
    b = [t for t in together.trials if t.state == TrialState.COMPLETE]
    assert len(a) == len(b) == 4
    assert [t.params for t in a] == [t.params for t in b]
    for x, y in zip(a, b, strict=True):
        for part in ("val", "test"):
            for k in COMPARED:
                got, want = y.user_attrs[ATTR.METRICS][part][k], x.user_attrs[ATTR.METRICS][part][k]
                assert abs(got - want) <= TOL, (part, k)
    fused = [t.user_attrs[ATTR.COST].get("fused_trials") for t in b]
    assert fused == [4.0] * 4  # the anchor (the base config) and three proposals together
    assert all(t.user_attrs[ATTR.ARTIFACTS].endswith(f"trial_{t.number:05d}") for t in b)


@pytest.mark.parametrize(
    ("seconds", "chosen"),
    [
        ({1: 1.0, 2: 2.0, 4: 4.2, 8: 8.5}, 1),  # per example flat or worse: one at a time
        ({1: 1.0, 2: 1.2, 4: 1.6, 8: 2.4}, 8),  # the pass grows slower than its rows
        ({1: 1.0, 2: 1.9, 4: 3.8, 8: 7.6}, 1),  # 5% per example: not worth holding 8 trials
        ({1: 1.0, 2: 1.5, 4: 3.5, 8: 9.0}, 2),
    ],
)
def test_fuse_auto_keeps_the_fastest_size_per_example(monkeypatch, seconds, chosen):
    import moo_search.recommender.trial_fused as tf

    sizes = iter(tf.CANDIDATES["cpu"])
    monkeypatch.setattr(tf, "_median_seconds", lambda fn: (fn(), seconds[next(sizes)])[1])
    k, per_example = tf.choose_fuse(_spec({"adapter.r": 4}))
    assert k == chosen
    assert per_example == pytest.approx({n: s / (n * 32) for n, s in seconds.items()})


def test_fuse_auto_measures_on_this_machine(capsys):
    from moo_search.recommender.objective import RecommenderObjective

    spec = _spec({"adapter.r": 4, "driver.fuse": "auto"})
    fused = RecommenderObjective().fused_evaluator(spec)
    err = capsys.readouterr().err
    assert "driver.fuse auto:" in err and "K=8:" in err
    assert fused is None or fused[0] in (2, 4, 8)


def test_a_member_whose_draw_fails_leaves_the_others_unchanged(solo, monkeypatch):
    from moo_search.recommender.train.loop import Trainer

    real = Trainer.draw

    def draw(self):
        if self.train_cfg.lr == 7e-3 and self.step == 5:
            raise RuntimeError("the catalog refresh failed")
        return real(self)

    monkeypatch.setattr(Trainer, "draw", draw)
    bad = _spec({"adapter.r": 4, "train.lr": 7e-3})
    fused = run_trials_together(
        [TrialRequest(_spec(CONFIGS[0])), TrialRequest(bad), TrialRequest(_spec(CONFIGS[2]))]
    )
    assert isinstance(fused[1], RuntimeError) and "catalog refresh" in str(fused[1])
    _same(solo[0], fused[0], tol=0.0)
    _same(solo[2], fused[2], tol=0.0)


def test_a_shared_pass_that_fails_fails_its_group_with_the_reason(solo, monkeypatch):
    import moo_search.recommender.train.fused as fused_mod

    def broken(trainers):
        raise RuntimeError("the shared pass broke")

    monkeypatch.setattr(fused_mod, "train_together", broken)
    other = _spec({"adapter.r": 2, "model.max_item_length": 8})  # a group of its own
    out = run_trials_together(
        [TrialRequest(_spec(CONFIGS[0])), TrialRequest(_spec(CONFIGS[2])), TrialRequest(other)]
    )
    assert all(isinstance(r, RuntimeError) and "shared pass broke" in str(r) for r in out)
