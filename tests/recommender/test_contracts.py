"""Contract suites: every registered entry of a kind, built-ins and a plugin's alike, passes the
same checks (scikit-learn's ``parametrize_with_checks``). The entries are read from the
registries at collection, with the entries the test plugin (tests/house_plugin.txt, a user's
module) registers (present while this module's tests run), so a new entry joins its suite with
no test edit.

- backbones: fit, score full rows and pairs alike, score a new user from a history (a closed
  form exactly as it scores the known user with that history), and an exported trial loads
  to the same lists;
- adapter types: the loss falls, the adapter's own weights move and are saved in PEFT's format,
  and plain PEFT loads them to the same embeddings; a knob the type does not own is refused,
  naming it;
- loss terms: trained alone, a term falls below the same model held still on the same batches;
- baselines: each beats Random on planted data, and says which studies record it;
- metrics: a list metric gives the values of its hand-computed example on the planted world
  (``metrics/_example.py``), the better lists better in its declared direction;
- dataset sources: loaded twice to one fingerprint, split twice to the same non-empty parts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from moo_search.errors import SpecError
from moo_search.recommender.registries import (
    ADAPTERS,
    BACKBONES,
    BASELINES,
    DATASETS,
    LOSS_TERMS,
    METRICS,
)

from ..helpers import run_kept, tiny_spec

REPO = Path(__file__).resolve().parents[2]


def _registries() -> list:
    from moo_search import registry
    from moo_search.recommender import registries
    from moo_search.report import FIGURES

    regs = [getattr(registries, n) for n in registries.__all__]
    return [*regs, registry.DRIVERS, registry.OBJECTIVES, registry.PROBLEMS, FIGURES]


def _plugin_entries() -> list[tuple[object, str, object]]:
    """The entries tests/house_plugin.txt (a user's module) registers: imported once to read
    them, then taken out again, so that only this module's tests see them (the rest of the
    session's studies must not gain its Oracle2 baseline or its figure)."""
    before = {id(r): dict(r.items()) for r in _registries()}
    path = REPO / "tests" / "house_plugin.txt"
    loader = importlib.machinery.SourceFileLoader("house_plugins_contracts", str(path))
    spec = importlib.util.spec_from_loader("house_plugins_contracts", loader)
    assert spec is not None
    loader.exec_module(importlib.util.module_from_spec(spec))
    added = [
        (r, name, entry)
        for r in _registries()
        for name, entry in r.items()
        if name not in before[id(r)]
    ]
    for r, name, _ in added:
        r.unregister(name)
    return added


PLUGIN_ENTRIES = _plugin_entries()


def _with_plugin(names: list[str], registry: object) -> list[str]:
    return names + [n for r, n, _ in PLUGIN_ENTRIES if r is registry and n not in names]


@pytest.fixture(scope="module", autouse=True)
def plugin_registered():
    for r, name, entry in PLUGIN_ENTRIES:
        r.register(name, entry)
    yield
    for r, name, _ in PLUGIN_ENTRIES:
        r.unregister(name)


PLUGIN_BACKBONES = {"pop2", "mf2"}
PLUGIN_ADAPTERS = {"lora2"}


def _needs(name: str) -> None:
    if name == "sansa":
        pytest.importorskip("sansa")


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", _with_plugin(BACKBONES.names(), BACKBONES))
def test_backbone_fits_and_scores_rows_pairs_and_a_new_user(name):
    _needs(name)
    spec = tiny_spec(**{"fusion.cf": name, "fusion.alpha": 0.2, "train.max_steps": 3})
    r = run_kept(spec)
    tower = r.model.cf_tower
    users = torch.arange(6)
    rows = tower(users).detach()
    n_items = r.model.logpop.shape[0]
    assert rows.shape == (6, n_items) and torch.isfinite(rows).all()
    items = torch.tensor([0, 5, 7, 1, 2, 3])
    pairs = tower(users, items).detach()
    assert torch.allclose(pairs, rows[torch.arange(6), items], atol=1e-5)
    from moo_search.recommender.prepare import prepare_data

    x = prepare_data(spec).split.matrix("train").tocsr()
    history = torch.as_tensor(x[3].indices, dtype=torch.long)
    new_user = tower.from_history(history).detach()
    assert new_user.shape == (n_items,) and torch.isfinite(new_user).all()
    if not getattr(tower, "learned", True) and set(np.unique(x[3].data)) <= {1.0}:
        # a closed form scores x_u W: a new user with u's history is scored as u
        assert torch.allclose(new_user.float(), rows[3].float(), atol=1e-4)


@pytest.fixture(scope="module")
def one_trial_per_backbone(tmp_path_factory):
    """A study with one fine-tune per registered backbone (enqueued), no variants."""
    from moo_search.drivers import run_study

    names = [n for n in BACKBONES.names() if n != "sansa" or importlib.util.find_spec("sansa")]
    d = tmp_path_factory.mktemp("backbones")
    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "fusion.alpha": 0.2,
            "out_dir": str(d),
            "storage": f"sqlite:///{d}/study.db",
            "search_space": {"fusion.cf": {"categorical": names}},
            "enqueue": [{"fusion.cf": n} for n in names],
            "objectives": [{"metric": "precision@10", "direction": "maximize"}],
            "budget": {"n_trials": len(names) + 1},  # the base anchor runs first
        }
    )
    study = run_study(spec)
    done = [t for t in study.trials if "moo:derived_from" not in t.user_attrs]
    assert all(t.state.name == "COMPLETE" for t in done), [
        (t.number, t.state.name, t.params, t.user_attrs.get("moo:fail_reason")) for t in done
    ]
    return d, {t.params["fusion.cf"]: t.number for t in done}


@pytest.mark.parametrize("name", _with_plugin(BACKBONES.names(), BACKBONES))
def test_backbone_saves_and_loads_to_the_same_lists(name, one_trial_per_backbone, tmp_path):
    _needs(name)
    from moo_search.recommender.export import export_trial, load_exported

    d, numbers = one_trial_per_backbone
    number = numbers[name]
    rec = load_exported(export_trial(d, out=tmp_path / name, trial=number))
    z = np.load(d / "artifacts" / f"trial_{number:05d}" / "lists.npz")
    for u, expected in list(zip(z["test_users"], z["test_lists"]))[:20]:
        assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in expected]


def test_the_backbone_suite_runs_the_plugins_backbones():
    assert set(BACKBONES.names()) >= PLUGIN_BACKBONES
    assert {"ease", "itemknn", "sansa", "mf"} <= set(BACKBONES.names())


# --------------------------------------------------------------------------- adapter types


@pytest.mark.parametrize("name", _with_plugin(ADAPTERS.names(), ADAPTERS))
def test_adapter_trains_saves_in_peft_format_and_loads_with_plain_peft(name, tmp_path):
    from moo_search.recommender.model.adapters import apply_adapter
    from moo_search.recommender.model.encoder import load_encoder

    spec = tiny_spec(**{"adapter.type": name, "train.max_steps": 30})
    torch.manual_seed(spec.seed)  # the trial's seed: the adapter starts where the trial's did
    base, tokenizer, _ = load_encoder(spec.model)
    fresh = apply_adapter(base, spec.adapter)
    start = {n: p.detach().clone() for n, p in fresh.named_parameters() if p.requires_grad}
    base, _, _ = load_encoder(spec.model)
    r = run_kept(spec, artifact_dir=tmp_path / "a")
    loss = r.history["loss"]
    assert np.mean(loss[-5:]) < np.mean(loss[:5])  # the trial learns with this adapter
    trained = {n: p for n, p in r.model.encoder.named_parameters() if p.requires_grad}
    if name == "none":
        assert trained == {} and not (tmp_path / "a" / "adapter").exists()
        return
    assert trained, "the adapter type adds no trainable weight"
    assert set(trained) == set(start)
    moved = [n for n, p in trained.items() if not torch.allclose(p.detach(), start[n])]
    assert moved and (tmp_path / "a" / "adapter" / "adapter_config.json").is_file()
    from peft import PeftModel

    loaded = PeftModel.from_pretrained(base, str(tmp_path / "a" / "adapter")).eval()
    ours = r.model.encoder.eval()
    batch = tokenizer(["a b c d e f", "g h"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = loaded(**batch).last_hidden_state
        b = ours(**batch).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", _with_plugin(ADAPTERS.names(), ADAPTERS))
def test_adapter_type_refuses_a_knob_it_does_not_own_naming_it(name):
    from moo_search.recommender.config._adapter import OWNED_KNOBS, knobs_of

    model = knobs_of(ADAPTERS.get(name))
    if model is None:  # a bare builder function owns every knob (registered the old way)
        assert tiny_spec(**{"adapter.type": name}).adapter.r is not None
        return
    foreign = {"r": 16, "alpha": 3.0, "dropout": 0.2, "feedforward_modules": ["output.dense"]}
    for knob in OWNED_KNOBS:
        if knob in model.model_fields:
            spec = tiny_spec(**{"adapter.type": name, f"adapter.{knob}": foreign[knob]})
            assert getattr(spec.adapter, knob) == foreign[knob]
        else:
            with pytest.raises(SpecError, match=rf"adapter\.{knob}: adapter type '{name}'"):
                tiny_spec(**{"adapter.type": name, f"adapter.{knob}": foreign[knob]})


def test_the_adapter_suite_runs_the_plugins_types():
    assert set(ADAPTERS.names()) >= PLUGIN_ADAPTERS
    assert {"lora", "dora", "ia3", "none"} <= set(ADAPTERS.names())


# --------------------------------------------------------------------------- loss terms

PLUGIN_TERMS = {"bias2"}


@pytest.mark.parametrize("name", _with_plugin(LOSS_TERMS.names(), LOSS_TERMS))
def test_loss_term_lowers_its_own_term_on_planted_data(name):
    """Trained on that term alone, the term falls below the same model held still (every
    learning rate 1e-9) on the same batches: paired step by step, from an equal first step.
    A term that moves no parameter (the click and satisfaction terms once did) fails here.
    (The task heads' warm-up before step 0 has its own test: test_task_towers.py.)"""
    term = LOSS_TERMS.get(name)
    assert term.default_weight >= 0 and term.description, name
    weights = {n: 0.0 for n in LOSS_TERMS.names()} | {name: 1.0}
    values = {}
    for lr in (3e-3, 1e-9):
        r = run_kept(
            tiny_spec(
                **{
                    "loss.weights": weights,
                    "train.max_steps": 40,
                    "train.lr": lr,
                    "train.id_lr": lr,
                    # the task heads' warm-up runs before step 0 at id_lr: off, for one start
                    "train.task_warmup_steps": 0,
                }
            )
        )
        values[lr] = np.array([step[name] for step in r.history["terms"]])
        assert len(values[lr]) == 40 and np.isfinite(values[lr]).all(), name
    trained, still = values[3e-3], values[1e-9]
    assert trained[0] == pytest.approx(still[0], abs=1e-6)  # the same start and batch
    assert trained[20:].mean() < still[20:].mean(), (name, trained[20:].mean(), still[20:].mean())
    assert (trained[20:] < still[20:]).mean() >= 0.75, name


def test_the_loss_term_suite_runs_the_plugins_terms():
    assert set(LOSS_TERMS.names()) >= PLUGIN_TERMS
    assert [n for n in LOSS_TERMS.names() if n not in PLUGIN_TERMS] == [
        "ranking",
        "conversion",
        "click",
        "satisfaction",
        "diversity",
        "novelty",
        "content",
    ]


# --------------------------------------------------------------------------- baselines

PLUGIN_BASELINES = {"Oracle2"}


@pytest.fixture(scope="module")
def baseline_contexts():
    """The tiny planted study's baseline context, warm and item-cold (a cold-only baseline
    is judged where a study records it)."""
    from moo_search.recommender.baselines.ranking import BaselineContext
    from moo_search.recommender.prepare import prepare_data

    out = {}
    for cold in (0.0, 0.2):
        spec = tiny_spec(**{"data.split.cold_items": cold})
        out[cold > 0] = BaselineContext.of(spec, prepare_data(spec))
    return out


@pytest.mark.parametrize("name", _with_plugin(BASELINES.names(), BASELINES))
def test_baseline_beats_random_on_planted_data(name, baseline_contexts):
    """Fit on the planted data, its validation NDCG@10 is above Random's (the same split)."""
    b = BASELINES.get(name)
    if any(importlib.util.find_spec(m) is None for m in b.requires):
        pytest.skip(f"{name} needs {b.requires}")
    assert b.description, name
    ctx = baseline_contexts[b.cold_only]
    ours = ctx.val_metric(ctx.scorer(name), "ndcg@10")
    chance = ctx.val_metric(ctx.scorer("Random"), "ndcg@10")
    if name == "Random":
        assert 0 <= ours < 0.2  # planted data: chance is low
    else:
        assert ours > chance, (name, ours, chance)


def test_baselines_say_where_a_study_records_them():
    applies = {n: b.applies for n, b in BASELINES.items()}
    assert applies["EASE"](cold_items=False, dense_fits=True)
    assert not applies["EASE"](cold_items=False, dense_fits=False)
    assert not applies["Hybrid"](cold_items=False, dense_fits=True)
    assert applies["Hybrid"](cold_items=True, dense_fits=True)
    if importlib.util.find_spec("sansa"):
        assert applies["SANSA"](cold_items=False, dense_fits=False)
    assert not applies["SANSA"](cold_items=False, dense_fits=True)


def test_the_baseline_suite_runs_the_plugins_baselines():
    assert set(BASELINES.names()) >= PLUGIN_BASELINES


# --------------------------------------------------------------------------- metrics

PLUGIN_METRICS = {"f1"}


@pytest.mark.parametrize("name", _with_plugin(METRICS.names(), METRICS))
def test_metric_matches_its_hand_computed_example_in_its_direction(name):
    """A list metric computes the values its example states on the planted world, and the
    better lists score better in its declared direction; a metric the trial reports itself
    (a task's AUC, a cost) declares a direction and says what it is."""
    from moo_search.recommender.metrics import EXAMPLE_LISTS, example_context

    m = METRICS.get(name)
    assert m.direction in ("maximize", "minimize")
    if m.compute is None:
        assert m.description, name
        return
    assert m.example is not None, f"list metric {name!r} has no hand-computed example"
    ctx = example_context()
    users = np.array([0, 1])
    got = {
        which: m.compute(lists, users, ctx, ctx.relevant) for which, lists in EXAMPLE_LISTS.items()
    }
    assert got["better"] == pytest.approx(m.example.better, abs=1e-9), name
    assert got["worse"] == pytest.approx(m.example.worse, abs=1e-9), name
    better = (
        got["better"] > got["worse"] if m.direction == "maximize" else got["better"] < got["worse"]
    )
    assert better, (name, m.direction, got)


def test_the_metric_suite_runs_the_plugins_metrics():
    assert set(METRICS.names()) >= PLUGIN_METRICS


# --------------------------------------------------------------------------- dataset sources

PLUGIN_DATASETS = {"toy-150"}


def _dataset_params() -> list:
    """Every registered source; one fetched from the network is in the slow tier (it loads
    the real data, where it is cached)."""
    plugin = {n: e for r, n, e in PLUGIN_ENTRIES if r is DATASETS}
    return [
        pytest.param(n, marks=pytest.mark.slow)
        if (plugin.get(n) or DATASETS.get(n)).fetch is not None
        else n
        for n in _with_plugin(DATASETS.names(), DATASETS)
    ]


@pytest.mark.parametrize("name", _dataset_params())
def test_dataset_source_loads_splits_and_keeps_its_fingerprint(name, tmp_path):
    """Loaded twice, the same interactions (fingerprint); split twice, the same parts, none
    empty, within the dataset's users and items."""
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset, load_split

    src = DATASETS.get(name)
    if src.example is not None:
        raw = src.example(tmp_path)
    elif src.fetch is not None:
        if src.is_cached is None or not src.is_cached():
            pytest.skip(f"{name} is fetched from the network and is not cached here")
        raw = {"dataset": name}
    else:
        assert not src.needs_path, f"{name} reads files: give its DatasetSource an example"
        raw = {"dataset": name}
    cfg = DataConfig.model_validate(raw)
    first, again = load_dataset(cfg), load_dataset(cfg)
    assert first.n_users > 1 and first.n_items > 1 and len(first.interactions) > 0
    assert first.fingerprint() == again.fingerprint()
    (ds, split), (_, split2) = load_split(cfg), load_split(cfg)
    parts = split.fingerprint_parts()
    assert parts == split2.fingerprint_parts()
    assert min(parts["train"], parts["val"], parts["test"]) > 0, parts
    assert sum(parts[p] for p in ("train", "val", "test")) <= len(ds.interactions)
    for part in ("train", "val", "test"):
        m = split.matrix(part)
        assert m.shape == (ds.n_users, ds.n_items)


def test_the_dataset_suite_runs_the_plugins_sources():
    assert set(DATASETS.names()) >= PLUGIN_DATASETS
