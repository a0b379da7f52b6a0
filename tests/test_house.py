"""The house: each extension point is one registration (shown by adding a toy one here), the
registries give one did-you-mean message, a study written before the study/ layer still opens,
and the package imports one way."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
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


# --------------------------------------------------------------------------- an old study


def _restore(fixture: dict, url: str, artifacts: Path | None = None) -> optuna.Study:
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
        if artifacts is not None and "moo:artifact_dir" in t["user_attrs"]:
            t["user_attrs"]["moo:artifact_dir"] = str(artifacts)  # this machine's copy
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


@pytest.mark.parametrize(
    ("commit", "config_check"),
    [
        # before recommender/ and the objective protocol
        ("13f7084", None),
        # before issue 31 moved the backbones' and adapters' knobs (it searched
        # fusion.ease_lambda and adapter.r): its bundle carries cf_params.lambda, same value
        ("c2efbbc", ("ease_lambda", "lambda: 176.92")),
    ],
)
def test_a_study_written_by_older_code_opens_reports_and_exports(tmp_path, commit, config_check):
    """A study of the default trial written by an older commit
    (tests/fixtures/make_study_<commit>.py), with its fine-tune's artifact files: it opens,
    reports and exports, and today's code re-runs its trial to the metrics it recorded."""
    import base64

    from moo_search.recommender.export import export_trial, load_exported, verify_export
    from moo_search.report import build_report, collect

    fixture = json.loads((REPO / "tests" / "fixtures" / f"study_{commit}.json").read_text())
    art = tmp_path / "artifacts" / "trial_00000"
    for rel, blob in fixture["artifact_files"].items():
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_bytes(base64.b64decode(blob))
    db = tmp_path / "old" / "study.db"
    db.parent.mkdir()
    _restore(fixture, f"sqlite:///{db}", artifacts=art)
    study = load_study(db.parent)
    assert count_states(study)["COMPLETE"] == 1 and count_states(study)["DERIVED"] == 5
    data = collect(study)
    top = data.panel.facts["vs_baseline"]
    assert data.reference and top and top["baseline"] == "EASE"
    assert (data.rows["artifacts"] == "verified").sum() == 6  # the files are the trial's own
    assert f"at-{commit}" in build_report(db.parent).read_text()
    out = export_trial(db.parent, out=tmp_path / "bundle", select="knee")
    rec = load_exported(out)
    assert len(rec.recommend(rec.user_ids[0], k=5)) == 5
    if config_check is not None:
        gone, there = config_check
        config = (out / "config.yaml").read_text()
        assert gone not in config and there in config
    # today's code re-runs the trial to the metrics that code recorded: the fixture was
    # written on another CPU, whose fp32 kernels (AVX-512 or not) round differently, so the
    # check is at 1e-3, not export --verify's same-machine 1e-4 (an AVX2-only EPYC differed
    # from the recording by 1.6e-4 in val/gini@10)
    outcome = verify_export(out, atol=1e-3)
    assert outcome["reproduced"] and outcome["metrics_checked"] > 20, outcome


# --------------------------------------------------------------------------- import direction

# Units: each top-level module or package of moo_search, and each module or package of
# moo_search.recommender. A unit may import units of its own group or of lower groups, at module
# level or inside functions; the engine's groups come first and never see the recommender's.
ENGINE = [
    {"_version", "errors", "redact", "interrupts"},
    {"registry"},
    {"spec", "stats", "pareto"},
    {"objective", "problems"},
    {"study"},
    {"report", "export"},
    {"drivers"},
]
RECOMMENDER = [
    {"recommender", "recommender.registries"},
    {"recommender.config"},
    {"recommender.data"},
    {"recommender.metrics"},
    {"recommender.spec", "recommender.memory", "recommender.cache", "recommender.rerank"},
    {"recommender.records"},
    {"recommender.inference"},
    {"recommender.evaluate"},
    {"recommender.model"},
    {"recommender.train", "recommender.prepare"},
    {"recommender.task_eval"},
    {"recommender.trial_eval", "recommender.trial_artifacts"},
    {"recommender.trial"},
    {"recommender.baselines", "recommender.reference"},
    {"recommender.objective", "recommender.export", "recommender.testing"},
]
APP = [{"cli", "", "_reference"}]  # the command, the docs generator and the package root ("")
LAYERS = [*ENGINE, *RECOMMENDER, *APP]
ENGINE_UNITS = set().union(*ENGINE)


def _unit(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:1] == ["recommender"] and len(parts) > 1:
        return f"recommender.{parts[1]}"
    return parts[0] if parts else ""


def _package_imports() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it (every import statement, inside
    functions too, relative ones resolved; not the type-only ones under ``TYPE_CHECKING``)."""
    edges: dict[str, dict[str, set[str]]] = {}
    for path in sorted((REPO / "moo_search").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        src = _unit(name) if "." in name else ""
        tree = ast.parse(path.read_text())
        typing_only = {  # `if TYPE_CHECKING:` imports name types; nothing is imported at run time
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            mods: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts[: len(parts) - node.level]
                    mods = [".".join([*base, *([node.module] if node.module else [])])]
                elif node.module == "moo_search":
                    mods = [f"moo_search.{a.name}" for a in node.names]
                elif node.module and node.module.startswith("moo_search."):
                    mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names if a.name.startswith("moo_search.")]
            for m in mods:
                dst = _unit(m)
                if dst != src:
                    edges.setdefault(src, {}).setdefault(dst, set()).add(path.name)
    return edges


def test_every_unit_has_a_layer():
    edges = _package_imports()
    units = set(edges) | {d for deps in edges.values() for d in deps}
    placed = set().union(*LAYERS)
    assert units - placed == set(), "units missing from LAYERS"
    assert placed - units - {"recommender"} == set(), "LAYERS names units that do not exist"


def test_imports_run_one_way_in_every_layer_inside_functions_too():
    rank = {u: i for i, group in enumerate(LAYERS) for u in group}
    bad = {
        f"{src} -> {dst}": sorted(files)
        for src, deps in _package_imports().items()
        for dst, files in deps.items()
        if rank.get(dst, -1) > rank.get(src, -1)
    }
    assert not bad, f"imports that reach up: {bad}"


def test_the_engine_imports_no_recommender_module():
    bad = {
        f"{src} -> {dst}": sorted(files)
        for src, deps in _package_imports().items()
        if src in ENGINE_UNITS
        for dst, files in deps.items()
        if dst not in ENGINE_UNITS
    }
    assert not bad, f"the engine reaches into the recommender or the CLI: {bad}"


def test_no_import_cycle_between_units():
    edges = {s: set(d) for s, d in _package_imports().items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(u: str, path: list[str]) -> bool:
        state[u] = 1
        for d in sorted(edges.get(u, ())):
            if state.get(d) == 1:
                cycle.extend([*path[path.index(d) :], d])
                return True
            if state.get(d) is None and visit(d, [*path, d]):
                return True
        state[u] = 2
        return False

    for u in sorted(edges):
        if state.get(u) is None and visit(u, [u]):
            break
    assert not cycle, " -> ".join(cycle)


def test_a_problem_study_runs_without_torch_or_the_recommender(tmp_path):
    code = f"""
import sys
from moo_search.drivers import run_study
from moo_search.report import build_report
from moo_search.spec import load_spec
from moo_search.export import select_trial
spec = load_spec({str(REPO / "studies" / "zdt1.yaml")!r},
                 ["budget.n_trials=6", "out_dir={tmp_path.as_posix()}"])
study = run_study(spec)
build_report({tmp_path.as_posix()!r})
select_trial(study, trial=None, select="knee", where=[])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("moo_search.recommender"))
print("LOADED", loaded)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout


def _top_level(path: Path) -> tuple[set[str], dict[str, str]]:
    """A module's own top-level names, and the names it imports: name -> from module."""
    own: set[str] = set()
    imported: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            own |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported |= {a.asname or a.name: node.module for a in node.names}
    return own, imported


def test_no_module_re_exports_a_siblings_names():
    """A name is imported from the module that defines it (a package's ``__init__`` is its
    public face and may gather its own submodules' names), anywhere in the repository."""
    modules = {}
    for path in (REPO / "moo_search").rglob("*.py"):
        if path.stem != "__init__":
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name] = _top_level(path)
    bad = set()
    for root in ("moo_search", "tests", "benchmarks"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module in modules:
                    own, imported = modules[node.module]
                    bad |= {
                        f"{path.relative_to(REPO)}: {a.name} from {node.module} "
                        f"(defined in {imported[a.name]})"
                        for a in node.names
                        if a.name not in own and a.name in imported
                    }
    assert sorted(bad) == []


def test_no_module_is_two_concepts():
    sizes = {
        p.relative_to(REPO).as_posix(): len(p.read_text().splitlines())
        for p in (REPO / "moo_search").rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 400} == {}


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (syntax check of page.js)"
)
def test_the_page_script_parses():
    script = REPO / "moo_search" / "report" / "assets" / "page.js"
    proc = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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


# --------------------------------------------------------------------------- a user's plugins


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "moo_search.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_users_plugins_reach_every_worker_through_the_cli(tmp_path):
    """Registered in the user's own module, named in `plugins`, used with `--workers 2`: a
    dataset, a metric named with digits (f1@10), a closed-form and a learned backbone and an
    adapter type with searched knobs of their own, a loss term, a baseline that joins the
    reference front, a figure."""
    import yaml

    from .helpers import TINY

    (tmp_path / "house_plugins.py").write_text((REPO / "tests" / "house_plugin.txt").read_text())
    spec = {
        **{k: v for k, v in TINY.items() if k != "data"},
        "name": "plugged",
        "plugins": ["house_plugins"],
        "data": {"dataset": "toy-150", "params": {"n_items": 90}},
        "adapter": {"type": "lora2", "params": {"rank2": 2}},
        "fusion": {"alpha": 0.2, "cf": "pop2", "cf_params": {"gamma": 1.0}},
        "loss": {"weights": {"ranking": 1.0, "bias2": 0.3}},
        "train": {**TINY["train"], "max_steps": 2},
        "search_space": {
            "fusion.cf": {"categorical": ["pop2", "mf2"]},
            "fusion.cf_params.gamma": {"float": [0.0, 2.0], "when": {"fusion.cf": ["pop2"]}},
            "fusion.cf_params.dim": {"int": [4, 16], "when": {"fusion.cf": ["mf2"]}},
            "adapter.params.rank2": {"int": [1, 4]},
            "loss.weights.bias2": {"float": [0.0, 1.0]},
        },
        "enqueue": [{"name": "learned", "fusion.cf": "mf2", "fusion.cf_params.dim": 6}],
        "objectives": [
            {"metric": "f1@10", "direction": "maximize"},
            {"metric": "novelty@10", "direction": "maximize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 4},
        "out_dir": str(tmp_path / "study"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = _cli(["run", "s.yaml", "--workers", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(tmp_path / "study")
    done = [t for t in study.trials if t.state.name == "COMPLETE" and not is_derived(t)]
    assert len(done) == 4
    workers = {t.user_attrs["moo:worker"]["pid"] for t in done if "moo:worker" in t.user_attrs}
    assert len(workers) == 2, workers  # both processes saw the registrations
    from safetensors.numpy import load_file

    for t in done:
        heads = load_file(str(Path(t.user_attrs["moo:artifact_dir"]) / "heads.safetensors"))
        if t.params["fusion.cf"] == "pop2":
            gamma = t.params["fusion.cf_params.gamma"]
            assert t.user_attrs["moo:backbone"]["params"]["gamma"] == pytest.approx(gamma)
            assert "fusion.cf_params.dim" not in t.params  # a knob only where it acts
        else:  # the learned backbone, trained with the heads at its own size
            dim = t.params["fusion.cf_params.dim"]
            assert heads["cf_tower.u.weight"].shape == (150, dim)
            assert "fusion.cf_params.gamma" not in t.params
        assert 0.0 <= t.user_attrs["moo:metrics"]["val"]["f1@10"] <= 1.0
        config = t.user_attrs["moo:config"]
        assert config["adapter"]["params"]["rank2"] == t.params["adapter.params.rank2"]
        assert config["loss"]["weights"]["bias2"] == t.params["loss.weights.bias2"]
    # the baseline is recorded and, reading the future, is on the reference front
    assert "Oracle2" in study.user_attrs["moo:baselines"]
    front = study.user_attrs["moo:reference_front"]["points"]
    assert "Oracle2" in {p["baseline"] for p in front}
    # the figure is on the page, also when the report is rebuilt by another process
    proc = _cli(["report", str(tmp_path / "study")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (tmp_path / "study" / "index.html").read_text()
    assert 'id="fig-states2"' in html and "Trials per state" in html
    assert len(study.user_attrs["moo:baselines"]["MostPop"]["val"]) > 0
    items = np.load(Path(done[0].user_attrs["moo:artifact_dir"]) / "lists.npz")["test_lists"]
    assert 80 <= items.max() < 90  # the dataset's own knob (90 items, not its default 80)
    # a bad knob of the dataset, the adapter or the backbone names its field
    for section, field, value in [
        ("data", "params", {"n_items": 5}),
        ("adapter", "params", {"rank2": 99}),
        ("fusion", "cf_params", {"gamma": 5.0}),
    ]:
        bad = {**spec, section: {**spec[section], field: value}}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        proc = _cli(["trial", "bad.yaml"], tmp_path)
        name = f"{section}.{field}.{next(iter(value))}"
        assert proc.returncode == 2 and name in proc.stderr, proc.stderr
    # an unknown loss term is named with the closest registered one
    bad = {**spec, "loss": {"weights": {"ranking": 1.0, "bias3": 0.3}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = _cli(["trial", "bad.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "loss.weights.bias3" in proc.stderr and "did you mean 'bias2'" in proc.stderr


def test_a_users_objective_with_its_own_config_runs_with_workers(tmp_path):
    import yaml

    (tmp_path / "house_plugins.py").write_text((REPO / "tests" / "house_plugin.txt").read_text())
    spec = {
        "name": "ring",
        "plugins": ["house_plugins"],
        "objective": "ring2",
        "ring": {"radius": 2.0},
        "search_space": {"ring.angle": {"float": [0.0, 1.5]}},
        "objectives": [
            {"metric": "x2", "direction": "maximize"},
            {"metric": "y2", "direction": "maximize"},
        ],
        "driver": {"population": 4},
        "budget": {"n_trials": 8},
        "out_dir": str(tmp_path / "study"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = _cli(["run", "s.yaml", "--workers", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(tmp_path / "study")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 8
    for t in done:  # the objective read its own config: radius 2, the searched angle
        a = t.params["ring.angle"]
        assert t.values == pytest.approx([2 * np.cos(a), 2 * np.sin(a)])
    # the panel it draws: its line printed, its card and every trial's table on the page
    far = max(t.values[0] for t in done)
    assert f"ring: the farthest x2 is {far:.3f} of radius 2.0" in proc.stdout, proc.stdout
    page = (tmp_path / "study" / "index.html").read_text()
    assert '"title":"ring radius"' in page and page.count('"header":["on the ring"') == 8
    # a typo in the objective's own section is named like any spec error
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**spec, "ring": {"radus": 2.0}}))
    proc = _cli(["run", "bad.yaml"], tmp_path)
    assert proc.returncode == 2 and "ring.radus" in proc.stderr, proc.stderr


def test_the_map_names_every_module():
    doc = (REPO / "docs" / "explanations" / "architecture.md").read_text()
    unnamed = [
        p.relative_to(REPO).as_posix()
        for p in sorted((REPO / "moo_search").rglob("*.py"))
        if p.stem not in ("__init__", "__main__") and p.stem not in doc
    ]
    assert unnamed == [], "modules docs/explanations/architecture.md does not name"


def test_no_long_function_or_constructor_anywhere():
    """No function over 60 lines, no ``__init__`` over 8 parameters, in the engine, the CLI
    and the recommender alike (dataclass records, whose fields are named at every use, are
    not counted)."""
    long, wide = [], []
    for path in sorted((REPO / "moo_search").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(REPO).as_posix()}:{node.lineno} {node.name}"
                if (node.end_lineno or node.lineno) - node.lineno + 1 > 60:
                    long.append(where)
                n = len(node.args.args) + len(node.args.kwonlyargs) - 1
                if node.name == "__init__" and n > 8:
                    wide.append(where)
    assert long == [] and wide == [], (long, wide)
