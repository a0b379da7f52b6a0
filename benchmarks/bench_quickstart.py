"""The quickstart study's comparison with its reference front, as `moo-search run` and
`moo-search report` print it, written for the docs (docs/figures/quickstart-comparison.txt).

    python benchmarks/bench_quickstart.py [--study reports/quickstart]

Runs `moo-search run studies/quickstart.yaml` first (it resumes a finished study at once, and
fetches MovieLens-100K on first use), then rebuilds the report and writes its comparison
lines: hypervolume of the study against the reference front (the baselines through the same
re-rankers) on validation and test, the front's most accurate trial against EASE paired by
user, and the click AUCs against the like-rate baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._docs_figures import write_figure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default="reports/quickstart")
    args = ap.parse_args()
    t0 = time.perf_counter()
    run = [sys.executable, "-m", "moo_search.cli", "run", "studies/quickstart.yaml", "--no-report"]
    subprocess.run(run, cwd=REPO, check=True)
    wall = time.perf_counter() - t0
    from moo_search.report import write_report

    _, data = write_report(REPO / args.study)
    lines = list(data.comparison_lines())
    print("\n".join(lines))
    print(f"(run: {wall / 60:.1f} min, a resumed study less)")
    print(f"written to {write_figure('quickstart-comparison', 'make demo', lines)}")


if __name__ == "__main__":
    main()
