"""The quickstart study's comparison with its reference front, as `moo-search run` and
`moo-search report` print it, written for the docs (docs/figures/quickstart-comparison.txt).

    python benchmarks/bench_quickstart.py
    python benchmarks/bench_quickstart.py --spec studies/cold_ml100k.yaml   # the cold study's

Runs `moo-search run studies/quickstart.yaml` first (it resumes a finished study at once, and
fetches MovieLens-100K on first use), then rebuilds the report and writes its comparison
lines: hypervolume of the study against the reference front (the baselines through the same
re-rankers) on validation and test, the front's most accurate trial against EASE paired by
user, and the click AUCs against the like-rate baseline. Where the browser tier's Chromium is
installed it also screenshots the dashboard for the docs (docs/img/dashboard-*.png): the
header and front, and the knee trial selected in the workbench.
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
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    args = ap.parse_args()
    name = Path(args.spec).stem  # the study's directory: reports/<name> (the shipped specs)
    t0 = time.perf_counter()
    run = [sys.executable, "-m", "moo_search.cli", "run", args.spec, "--no-report"]
    subprocess.run(run, cwd=REPO, check=True)
    wall = time.perf_counter() - t0
    from moo_search.report import write_report

    _, data = write_report(REPO / "reports" / name)
    lines = list(data.comparison_lines())
    print("\n".join(lines))
    print(f"(run: {wall / 60:.1f} min, a resumed study less)")
    command = "make demo" if name == "quickstart" else f"moo-search run {args.spec}"
    figure = "quickstart-comparison" if name == "quickstart" else f"{name}-comparison"
    print(f"written to {write_figure(figure, command, lines)}")
    if name == "quickstart":
        _screenshots(REPO / "reports" / name / "index.html")


def _screenshots(page_path: Path) -> None:
    """The dashboard as the browser tier renders it, for docs/getting-started/dashboard.md."""
    import os
    import shutil

    chromium = os.environ.get("MOO_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.exists(chromium) or shutil.which(chromium)):
        print(f"no Chromium at {chromium}: no screenshots")
        return
    from playwright.sync_api import sync_playwright

    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.wait_for_selector("#fig-front[data-rendered='1']", timeout=60_000)
        page.screenshot(path=str(out / "dashboard-front.png"))
        knee = page.locator("text=knee").first
        if knee.count():
            knee.click()
            page.wait_for_timeout(500)
        page.locator("#sec-front").scroll_into_view_if_needed()
        page.screenshot(path=str(out / "dashboard-workbench.png"), full_page=False)
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
