"""Report at scale: a synthetic study of 10,000 trials and 4 objectives.

    python benchmarks/bench_report.py [--trials 10000] [--objectives 4]

Prints the time to build the HTML from a SQLite storage (read + numerics + figures + page),
its parts, the page size, and the time headless Chromium needs to draw the first screen
(figures below the fold render when scrolled to; the time to draw all of them is printed too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from moo_search.recommender.testing import synthetic_study
from moo_search.report import build_report, collect

optuna.logging.set_verbosity(optuna.logging.ERROR)


def render_seconds(path: Path) -> tuple[float, float]:
    """(load to the first view drawn, then every lazy figure drawn by scrolling to it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("#fig-front[data-rendered='1']", timeout=120_000)
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        first = time.perf_counter() - t
        t = time.perf_counter()
        ids = page.evaluate(
            "() => Object.keys(JSON.parse(document.getElementById('payload').textContent).figures)"
        )
        for fid in ids:
            page.locator(f"#{fid}").scroll_into_view_if_needed()
            page.wait_for_selector(f"#{fid}[data-rendered='1']", timeout=120_000)
        rest = time.perf_counter() - t
        b.close()
    if errors:
        raise SystemExit(f"page errors: {errors}")
    return first, rest


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--objectives", type=int, default=4)
    ap.add_argument(
        "--dir",
        default=None,
        help="Keep the study here and reuse it (writing 10k trials "
        "through Optuna's RDB storage takes minutes).",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.dir or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{tmp}/study.db"
        if not (Path(tmp) / "study.db").exists():
            t = time.perf_counter()
            synthetic_study(
                url,
                n_trials=args.trials,
                n_objectives=args.objectives,
                failed=20,
                infeasible_share=0.05,
            )
            print(f"synthetic study written: {time.perf_counter() - t:.1f}s (setup, not measured)")
        print(f"synthetic study: {args.trials:,} trials x {args.objectives} objectives in {url}")
        study = optuna.load_study(study_name="synthetic", storage=url)
        t = time.perf_counter()
        study.get_trials(deepcopy=False)
        read = time.perf_counter() - t
        t = time.perf_counter()
        collect(study)
        data_s = time.perf_counter() - t
        t = time.perf_counter()
        out = build_report(tmp)  # the whole command: open storage, read, numerics, figures, page
        total = time.perf_counter() - t
        print(
            f"build_report: {total:.2f}s total (read trials {read:.2f}s, data step {data_s:.2f}s)"
        )
        print(f"page size: {out.stat().st_size / 2**20:.1f} MiB")
        secs, rest = render_seconds(out)
        print(
            f"Chromium render: {secs:.2f}s from load to the first screen drawn (header, cards, Pareto front, table)"
        )
        print(
            f"                 {rest:.2f}s more to draw every other figure, scrolling to each (they render lazily)"
        )
        print(
            f"targets: build < 15s -> {'ok' if total < 15 else 'MISSED'}; render < 5s -> {'ok' if secs < 5 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
