"""Figures the docs quote, written by the benchmark that measured them (never typed in):
``docs/figures/NAME.txt`` holds the command, the machine and the date, then the lines; a page
includes it with ``--8<-- "NAME.txt"`` (pymdownx.snippets, base path docs/figures)."""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "")
    import os

    return f"{model or platform.machine()}, {os.cpu_count()} cores"


def write_figure(name: str, command: str, lines: list[str]) -> Path:
    """Write ``docs/figures/NAME.txt``: a header naming ``command``, the CPU and the date, then
    ``lines`` as printed."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.txt"
    day = datetime.date.today().isoformat()
    header = f"# {command}  ({_cpu()}; {day})"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path
