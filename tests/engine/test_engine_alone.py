"""The engine without the recommender: ``pip install moo-search`` brings no torch,
transformers, PEFT, implicit or MLflow, yet runs a study of any other objective, its report and
its export selection; the recommender's commands say what to install. Each case runs the CLI in
a fresh interpreter where those libraries cannot be imported (as in a bare install; ``make
test-bare`` checks a real one), and records which modules it imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ABSENT = (
    "torch",
    "transformers",
    "peft",
    "safetensors",
    "sklearn",
    "pyarrow",
    "implicit",
    "mlflow",
)
"""The recommender extra's libraries: made unimportable in the child, as when not installed."""

_CHILD = textwrap.dedent(
    """
    import json, sys
    absent = set(json.loads(sys.argv[1]))

    class NotInstalled:  # first on the import path: these are found nowhere
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in absent:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled)
    from moo_search.cli import main
    try:
        code = main(sys.argv[3:])
    finally:
        seen = sorted(sys.modules)
        with open(sys.argv[2], "w") as f:
            json.dump(seen, f)
    sys.exit(code)
    """
)

ZDT1 = """
name: zdt1-alone
objective: zdt1
problem: {n_var: 4}
objectives:
  - {metric: f1, direction: minimize}
  - {metric: f2, direction: minimize}
driver: {backend: pymoo, algorithm: nsga2, population: 8, seed: 0, reference_point: [1.1, 1.1]}
budget: {n_trials: 24}
"""


def cli(tmp: Path, *argv: str, absent: tuple[str, ...] = ABSENT) -> tuple[int, str, list[str]]:
    """Run ``moo-search argv`` in ``tmp`` with ``absent`` unimportable: (exit code, stdout and
    stderr, the modules it imported)."""
    seen = tmp / "modules.json"
    p = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(list(absent)), str(seen), *argv],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return p.returncode, p.stdout + p.stderr, json.loads(seen.read_text())


def _recommender_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith("moo_search.recommender")]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zdt1 study run where the recommender's libraries cannot be imported."""
    tmp = tmp_path_factory.mktemp("alone")
    (tmp / "zdt1.yaml").write_text(ZDT1)
    code, out, modules = cli(tmp, "run", "zdt1.yaml")
    assert code == 0, out
    assert "24 complete" in out and (tmp / "reports/zdt1-alone/index.html").is_file(), out
    assert not [m for m in modules if m.split(".")[0] in ABSENT]
    return tmp


def test_run_imports_nothing_of_the_recommender(study: Path) -> None:
    """With the recommender installed too, a zdt1 study does not import it."""
    code, out, modules = cli(study, "run", "zdt1.yaml", "--n-trials", "24", absent=())
    assert code == 0, out
    assert _recommender_modules(modules) == []
    assert "torch" not in modules


def test_report_and_export_selection(study: Path) -> None:
    code, out, _ = cli(study, "report", "reports/zdt1-alone")
    assert code == 0, out
    assert "report: reports/zdt1-alone/index.html" in out
    assert "reference front" not in out  # a problem's study records no baselines
    code, out, _ = cli(study, "export", "reports/zdt1-alone", "--select", "knee", "--out", "knee")
    assert code == 0, out
    sel = json.loads((study / "knee/selection.json").read_text())
    manifest = json.loads((study / "knee/manifest.json").read_text())
    assert set(manifest["files"]) == {"selection.json"}
    assert sel["rule"] == "knee" and sel["trial"] in [row["trial"] for row in sel["front"]]
    assert set(sel["values"]) == {"f1", "f2"} and set(sel["params"]) == {"x0", "x1", "x2", "x3"}
    assert f"exported trial {sel['trial']} of study 'zdt1-alone'" in out
    assert {"trial": sel["trial"], **sel["values"]} in sel["front"]  # chosen on the front


def test_export_refuses_model_flags_before_writing(study: Path) -> None:
    for flag in (["--verify"], ["--register", "m"]):
        code, out, _ = cli(
            study, "export", "reports/zdt1-alone", "--trial", "3", "--out", "x", *flag
        )
        assert code == 2, out
        assert f"{flag[0]}: this study's objective exports a selection" in out
        assert "Traceback" not in out
        assert not (study / "x").exists()


def test_recommender_commands_say_what_to_install(study: Path) -> None:
    (study / "rec.yaml").write_text("name: rec\n")
    for argv, said in (
        (["trial", "rec.yaml"], "`moo-search trial` runs the language-model recommender"),
        (["data", "info", "movielens-100k"], "`moo-search data` runs"),
        (["run", "rec.yaml"], "objective 'run_trial' (from moo-search) cannot be loaded"),
        (["list", "backbones"], "backbones: `moo-search list`"),
    ):
        code, out, _ = cli(study, *argv)
        assert code == 2, out
        assert said in out and "pip install 'moo-search[recommender]'" in out, out
        assert "missing torch" in out and "Traceback" not in out, out
    code, out, _ = cli(study, "list")
    assert code == 0, out
    assert "problems   objective          zdt1" in out
    assert "datasets, adapters, backbones, metrics, families: " in out


def test_gp_sampler_names_torch(study: Path) -> None:
    code, out, _ = cli(
        study,
        "run",
        "zdt1.yaml",
        "--set",
        "driver.backend=optuna",
        "--set",
        "driver.algorithm=gp",
        "--study-name",
        "gp",
        "--n-trials",
        "2",
    )
    assert code == 2, out
    assert "driver.algorithm: gp needs torch" in out
