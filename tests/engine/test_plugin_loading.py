"""Loading a study's plugins (#37): a plugin that exits at import is an error, not a silent
exit 0; a plugin file hidden by a module of the same name is refused naming both files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, plugin: str, source: str) -> subprocess.CompletedProcess:
    (tmp_path / f"{plugin}.py").write_text(source)
    spec = (REPO / "studies" / "zdt1.yaml").read_text() + f"plugins: [{plugin}]\n"
    (tmp_path / "s.yaml").write_text(spec)
    # the console script, as a user runs it (`python -m` would put the working directory
    # first on sys.path, and a random.py there would shadow the standard library's itself)
    argv = [str(Path(sys.executable).parent / "moo-search"), "run", "s.yaml", "--n-trials", "3"]
    argv += ["--no-report", "--storage", f"sqlite:///{tmp_path / 'st.db'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("code", ["0", "None", "'bye'"])
def test_a_plugin_that_exits_at_import_is_an_error_naming_it(tmp_path, code):
    p = _run(tmp_path, "quits", f"import sys\nsys.exit({code})\n")
    assert p.returncode == 2, p.stderr
    assert "plugins.0" in p.stderr and "sys.exit(" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "st.db").exists() or "complete" not in p.stderr


@pytest.mark.parametrize("name", ["random", "json", "yaml"])
def test_a_plugin_file_another_module_would_hide_is_refused_naming_both(tmp_path, name):
    p = _run(tmp_path, name, "raise SystemExit('never imported')\n")
    assert p.returncode == 2, p.stderr
    assert "plugins.0" in p.stderr and str(tmp_path / f"{name}.py") in p.stderr
    assert "rename your plugin module" in p.stderr
