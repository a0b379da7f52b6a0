"""The package imports one way (the engine never reaches the recommender), no module
re-exports a sibling's names or holds two concepts, no function is over 60 lines, and the
architecture map names every module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.ERROR)
REPO = Path(__file__).resolve().parents[2]


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
    {"recommender", "recommender.registries", "recommender.cache"},
    {"recommender.config"},
    {"recommender.data"},
    {"recommender.metrics"},
    {"recommender.spec", "recommender.memory", "recommender.rerank", "recommender.zscore"},
    {"recommender.records"},
    {"recommender.inference"},
    {"recommender.candidates"},
    {"recommender.evaluate"},
    {"recommender.model"},
    {"recommender.train", "recommender.prepare"},
    {"recommender.task_eval", "recommender.new_item_choice"},
    {"recommender.trial_eval", "recommender.trial_artifacts"},
    {"recommender.trial"},
    {"recommender.trial_fused"},
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
