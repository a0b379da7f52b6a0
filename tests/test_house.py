"""The house: each extension point is one registration (shown by adding a toy one here), the
registries give one did-you-mean message, a study written before the study/ layer still opens,
and the package imports one way."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest

from moo_search.drivers import BaseDriver, run_study
from moo_search.errors import SpecError
from moo_search.registry import (
    ADAPTERS,
    BACKBONES,
    DATASETS,
    DRIVERS,
    METRICS,
    PROBLEMS,
    Registry,
)
from moo_search.spec import LossWeights, spec_from_dict
from moo_search.study import count_states, is_derived, load_study

from .helpers import custom_spec, tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "legacy_study.json"


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
    from moo_search.data.registered import DatasetSource
    from moo_search.data.synthetic import make_synthetic
    from moo_search.trial import run_trial

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
    from moo_search.metrics import MetricDef, is_known_metric, metric_direction
    from moo_search.trial import run_trial

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
    from moo_search.evaluate import evaluate_scorer
    from moo_search.model.backbones import Backbone
    from moo_search.trial import prepare_data, run_trial

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
    from moo_search.model.adapters import _lora
    from moo_search.trial import run_trial

    def lora_query_only(model, cfg):
        return _lora(model, cfg.model_copy(update={"target_modules": ["query"]}))

    registered(ADAPTERS, "lora-q", lora_query_only)
    r = run_trial(tiny_spec(**{"adapter.type": "lora-q", "train.max_steps": 2}), keep_model=True)
    names = [n for n, p in r.history["_model"].named_parameters() if p.requires_grad]
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
    from moo_search.train.terms import LOSS_TERMS

    assert LOSS_TERMS.names() == list(LossWeights.model_fields)


def test_every_driver_runs_exactly_its_budget(tmp_path):
    for backend in DRIVERS.names():
        spec = custom_spec("sphere2", n_trials=5, backend=backend, out_dir=str(tmp_path / backend))
        assert count_states(run_study(spec))["COMPLETE"] == 5, backend


# --------------------------------------------------------------------------- an old study


def _restore(fixture: dict, url: str) -> optuna.Study:
    """Write the stored fixture (a study dumped by moo-search before the study/ layer) into a
    fresh storage, trial by trial, as Optuna would hold it."""
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(
        storage=url,
        study_name=fixture["study_name"],
        directions=[d.lower() for d in fixture["directions"]],
    )
    for k, v in fixture["user_attrs"].items():
        study.set_user_attr(k, v)
    for t in fixture["trials"]:
        study.add_trial(
            create_trial(
                state=TrialState[t["state"]],
                values=t["values"],
                params=t["params"],
                distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
                user_attrs=t["user_attrs"],
                system_attrs=t["system_attrs"],
            )
        )
    return study


def test_a_study_written_before_the_study_layer_opens_reports_and_selects(tmp_path):
    from moo_search.export import select_trial
    from moo_search.report import build_report, collect

    fixture = json.loads(FIXTURE.read_text())
    db = tmp_path / "legacy" / "study.db"
    db.parent.mkdir()
    _restore(fixture, f"sqlite:///{db}")
    study = load_study(db.parent)
    counts = count_states(study)
    derived = sum(is_derived(t) for t in study.trials)
    assert counts["COMPLETE"] == 2 and counts["DERIVED"] == derived == 10
    data = collect(study)
    assert data.metrics == ["precision@10", "ild@10"] and data.reference  # its reference front
    assert data.front_undominated is not None
    html = build_report(db.parent).read_text()
    assert "legacy" in html
    chosen = select_trial(study, trial=None, select="knee", where=[])
    assert chosen.trial.number in {r["trial"] for r in chosen.front}
    # its conversion metrics under their old names (ctr_*) still read, filter and show
    old = select_trial(study, trial=None, select="knee", where=["ctr_auc>=0.5"])
    assert old.trial.number in {r["trial"] for r in old.front}
    assert "ctr_auc" in html


# --------------------------------------------------------------------------- import direction

# which top-level modules/packages each may import (at module level or lazily)
LAYERS = {
    "spec": {"errors", "registry", "spec", "metrics", "redact"},
    "study": {"errors", "registry", "spec", "study", "pareto", "redact"},
    "report": {"errors", "registry", "spec", "study", "pareto", "report", "redact", "metrics"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("moo_search")
        ):
            parts = node.module.split(".")
            out.add(parts[1] if len(parts) > 1 else "")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("moo_search."):
                    out.add(a.name.split(".")[1])
    return out - {""}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_imports_run_one_way(layer):
    root = REPO / "moo_search" / layer
    files = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
    bad = {
        f.relative_to(REPO).as_posix(): sorted(_imports(f) - LAYERS[layer])
        for f in files
        if _imports(f) - LAYERS[layer]
    }
    assert not bad, f"{layer} reaches up the pipeline: {bad}"


def test_no_module_is_two_concepts():
    sizes = {
        p.relative_to(REPO).as_posix(): len(p.read_text().splitlines())
        for p in (REPO / "moo_search").rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 450} == {}


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (syntax check of page.js)"
)
def test_the_page_script_parses():
    script = REPO / "moo_search" / "report" / "assets" / "page.js"
    proc = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _module_level_imports(path: Path) -> set[str]:
    """moo_search modules imported at import time (not inside functions or TYPE_CHECKING)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("moo_search")
        ):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("moo_search"))
    return out


def test_no_import_circle_inside_the_package():
    pkg = REPO / "moo_search"
    modules = {}
    for p in pkg.rglob("*.py"):
        parts = p.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = _module_level_imports(p)

    def resolve(m: str) -> str:
        return m if m in modules else m.rsplit(".", 1)[0]

    graph = {m: {resolve(d) for d in deps if resolve(d) != m} for m, deps in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, path: list[str]) -> bool:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle.extend([*path[path.index(d) :], d] if d in path else [m, d])
                return True
            if state.get(d) is None and visit(d, [*path, d]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if state.get(m) is None and visit(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_registry_docstrings_example_works_verbatim():
    import re as _re

    import moo_search.registry as reg
    from moo_search.data import load_dataset
    from moo_search.registry import DATASETS
    from moo_search.spec import DataConfig

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
    from moo_search.metrics import MetricDef, is_known_metric
    from moo_search.registry import DATASETS, METRICS

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
