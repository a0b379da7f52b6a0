"""The built docs site in a real browser: every page opens without a JavaScript error, every
internal link (and its #anchor) lands on something, and the getting-started page and the spec
reference are screenshotted as rendered (reports/docs-site/*.png)."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

from .engine.test_browser import browser  # noqa: F401  (the fixture: headless Chromium)

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "reports" / "docs-site"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    p = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", **dict(__import__("os").environ)},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(out))
    handler.func.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _pages(out: Path) -> list[str]:
    return sorted(
        str(p.relative_to(out)).replace("index.html", "")
        for p in out.rglob("index.html")
        if "assets" not in p.parts
    )


def test_every_page_opens_without_errors_and_every_internal_link_lands(browser, site):  # noqa: F811
    out, base = site
    pages = _pages(out)
    assert len(pages) >= 20
    problems: list[str] = []
    ids: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for rel in pages:
        url = urljoin(base, rel)
        errors.clear()
        response = page.goto(url)
        assert response is not None and response.ok, url
        page.wait_for_load_state("networkidle")
        problems += [f"{rel}: {e}" for e in errors]
        ids[urlsplit(url).path] = set(
            page.eval_on_selector_all("[id]", "els => els.map(e => e.id)")
        )
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        links += [(rel, h) for h in hrefs if h.startswith(base)]
    for rel, href in links:
        target, anchor = urldefrag(href)
        path = urlsplit(target).path
        file = out / path.lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.exists():
            problems.append(f"{rel}: broken link {href}")
        elif anchor and path in ids and anchor not in ids[path]:
            problems.append(f"{rel}: no #{anchor} on {path}")
    page.close()
    assert problems == []


@pytest.mark.parametrize("rel", ["getting-started/quickstart/", "reference/spec/"])
def test_the_getting_started_page_and_the_spec_reference_render(browser, site, rel):  # noqa: F811
    _, base = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(base, rel))
    page.wait_for_load_state("networkidle")
    heading = page.inner_text("h1").rstrip("¶").strip()
    assert heading in ("Quick start", "The study spec")
    if rel.startswith("reference"):
        assert page.locator("table").count() >= 9  # the study, then a table per trial section
        assert "data.split.cold_items" in page.inner_text("article")
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"\W+", "-", rel.strip("/")) + ".png"
    page.screenshot(path=str(SHOTS / name), full_page=False)
    page.close()
    assert (SHOTS / name).stat().st_size > 10_000
