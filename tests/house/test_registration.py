"""Each extension point is one registration, shown by adding a toy entry of every kind here;
the registries give one did-you-mean message and refuse an entry of the wrong type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from moo_search import run_trial
from moo_search.drivers import BaseDriver, run_study
from moo_search.errors import SpecError
from moo_search.recommender.config import LossWeights
from moo_search.recommender.registries import ADAPTERS, BACKBONES, DATASETS, METRICS
from moo_search.registry import DRIVERS, PROBLEMS, Registry
from moo_search.spec import spec_from_dict
from moo_search.study import count_states

from ..helpers import custom_spec, tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- toy extensions


@pytest.fixture
def registered():
    """Register toy entries for one test and remove them afterwards."""
    added: list[tuple[Registry, str]] = []

    def add(registry: Registry, name: str, obj):
        registry.register(name, obj)
        added.append((registry, name))
        return obj

    yield add
    for registry, name in added:
        registry.unregister(name)


def test_a_toy_dataset_is_one_registration(registered):
    from moo_search.recommender.data.registered import DatasetSource
    from moo_search.recommender.data.synthetic import make_synthetic

    registered(
        DATASETS,
        "toy-movies",
        DatasetSource(lambda cfg: make_synthetic(n_users=120, n_items=60, seed=3)),
    )
    spec = tiny_spec(**{"data.dataset": "toy-movies", "train.max_steps": 3})
    result = run_trial(spec)
    assert result.metrics["val"]["precision@10"] > 0
    # and the registry names it in the did-you-mean of a typo
    with pytest.raises(SpecError, match=r"data.dataset: .*did you mean 'toy-movies'"):
        tiny_spec(**{"data.dataset": "toy-movie"})


def test_a_toy_metric_is_one_registration(registered):
    from moo_search.recommender.metrics import MetricDef, is_known_metric, metric_direction

    def first_slot_hit(lists, users, ctx, rel):
        return float(np.mean(np.asarray(rel[users, lists[:, 0]]).ravel() > 0))

    registered(METRICS, "hit_first", MetricDef("hit_first", "maximize", compute=first_slot_hit))
    assert is_known_metric("hit_first@10") and metric_direction("hit_first@10") == "maximize"
    assert not is_known_metric("cold/hit_first@10")  # it declares no slices
    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "objectives": [{"metric": "hit_first@10", "direction": "maximize"}],
        }
    )
    r = run_trial(spec)
    hit, mrr = r.metrics["val"]["hit_first@10"], r.metrics["val"]["mrr@10"]
    assert 0 < hit <= mrr  # a first-slot hit counts 1 in MRR too; later hits add the rest


def test_a_toy_backbone_is_one_registration(registered):
    from moo_search.recommender.evaluate import evaluate_scorer
    from moo_search.recommender.model.backbones import Backbone
    from moo_search.recommender.prepare import prepare_data
    from moo_search.recommender.trial import run_trial

    def fit_popularity(ctx):
        pop = np.asarray(ctx.x.sum(0)).ravel()  # x_u @ W ranks by popularity for any user
        return np.tile(pop, (len(pop), 1)).astype(np.float32), {}

    registered(BACKBONES, "pop", Backbone("pop", fit_popularity, "item popularity"))
    spec = tiny_spec(**{"fusion.cf": "pop", "fusion.alpha": 0.0, "train.max_steps": 2})
    r = run_trial(spec)
    data = prepare_data(spec)
    _, counts = data.split.train_counts()
    most_pop = evaluate_scorer(
        lambda users: np.broadcast_to(counts.astype(float), (len(users), len(counts))),
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        features=data.features,
    )
    assert r.metrics["test"]["precision@10"] == pytest.approx(most_pop["test"]["precision@10"])


def test_a_toy_adapter_is_one_registration(registered):
    from moo_search.recommender.model.adapters import lora_config
    from moo_search.recommender.trial import Trial

    def lora_query_only(model, cfg):
        return lora_config(model, cfg.model_copy(update={"target_modules": ["query"]}))

    registered(ADAPTERS, "lora-q", lora_query_only)
    r = Trial(tiny_spec(**{"adapter.type": "lora-q", "train.max_steps": 2}))
    r.run()
    names = [n for n, p in r.model.named_parameters() if p.requires_grad]
    assert any("query" in n and "lora_" in n for n in names)
    assert not any("value" in n and "lora_" in n for n in names)


def test_a_toy_driver_and_problem_are_one_registration_each(registered, tmp_path):
    from moo_search.problems import Problem

    class OneAtATime(BaseDriver):
        name = "toy"
        algorithms = Registry("toy algorithm", field="driver.algorithm")
        algorithms.register("nsga2", None)

        @staticmethod
        def sampler(spec):
            return optuna.samplers.RandomSampler(seed=spec.driver.seed)

        def _step(self, ctx, counts):
            self._run_one(ctx)

    def sphere(n_var: int = 2, **_):
        return Problem(
            "sphere",
            n_var,
            2,
            lambda x: np.array([np.sum(x**2), np.sum((1 - x) ** 2)]),
            lambda r: 0.0,
        )

    registered(DRIVERS, "toy", OneAtATime)
    registered(PROBLEMS, "sphere", sphere)
    spec = spec_from_dict(
        {
            "name": "toy",
            "objective": "sphere",
            "problem": {"n_var": 3},
            "objectives": [
                {"metric": "f1", "direction": "minimize"},
                {"metric": "f2", "direction": "minimize"},
            ],
            "driver": {"backend": "toy", "reference_point": [4, 4]},
            "budget": {"n_trials": 7},
            "storage": "memory://",
            "out_dir": str(tmp_path),
        }
    )
    study = run_study(spec)
    assert count_states(study)["COMPLETE"] == 7
    assert sorted(study.trials[0].params) == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("raw", "field", "hint"),
    [
        ({"data": {"dataset": "movielens-100"}}, "data.dataset", "movielens-100k"),
        ({"adapter": {"type": "dorra"}}, "adapter.type", "dora"),
        ({"fusion": {"cf": "itemkn"}}, "fusion.cf", "itemknn"),
        ({"driver": {"backend": "optuns"}}, "driver.backend", "optuna"),
        ({"driver": {"algorithm": "nsga22"}}, "driver.algorithm", "nsga2"),
        ({"train": {"early_stop_metric": "ndgc@10"}}, "train.early_stop_metric", "ndgc@10"),
    ],
)
def test_every_registry_names_the_field_and_the_closest_name(raw, field, hint):
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw, source="s.yaml")
    assert f"{field}:" in str(info.value) and hint in str(info.value), str(info.value)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="adapter type 'lora' is already registered"):
        ADAPTERS.register("lora", lambda model, cfg: None)


def test_loss_terms_are_keyed_like_the_spec_loss_weights():
    from moo_search.recommender.registries import LOSS_TERMS

    assert LOSS_TERMS.names() == list(LossWeights().model_dump())
    assert LossWeights().of("ranking") == 1.0 and LossWeights().of("ctr") == 0.2


def test_every_driver_runs_exactly_its_budget(tmp_path):
    for backend in DRIVERS.names():
        spec = custom_spec("sphere2", n_trials=5, backend=backend, out_dir=str(tmp_path / backend))
        assert count_states(run_study(spec))["COMPLETE"] == 5, backend


def test_the_registry_docstrings_example_works_verbatim():
    import re as _re

    import moo_search.registry as reg
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset
    from moo_search.recommender.registries import DATASETS

    block = _re.search(r"::\n\n((?:    .*\n|\n)+)", reg.__doc__ or "")
    assert block, "the registry docstring has an example"
    code = "\n".join(line[4:] for line in block.group(1).splitlines())
    try:
        exec(compile(code, "registry-docstring", "exec"), {})
        ds = load_dataset(DataConfig(dataset="my-data"))
        assert ds.n_items == 40
    finally:
        DATASETS.unregister("my-data")


def test_a_registry_refuses_an_entry_of_the_wrong_type_and_a_bad_metric():
    from moo_search.recommender.metrics import MetricDef, is_known_metric
    from moo_search.recommender.registries import DATASETS, METRICS

    with pytest.raises(TypeError, match="DatasetSource"):
        DATASETS.register("bare-function", lambda cfg: None)
    assert "bare-function" not in DATASETS
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize'"):
        MetricDef("f2", "maximise")
    try:  # a name with digits, as users name metrics (f1, map@k ...)
        METRICS.register("f1", MetricDef("f1", "maximize", compute=lambda *a: 0.5))
        assert is_known_metric("f1@10")
    finally:
        METRICS.unregister("f1")
