"""Browser tier: the dashboard opened from disk in headless Chromium (Debian's package)."""

from __future__ import annotations

import os
import shutil

import optuna
import pytest

from moo_search.recommender.testing import synthetic_study
from moo_search.report import build_report

pytestmark = pytest.mark.browser
optuna.logging.set_verbosity(optuna.logging.ERROR)
CHROMIUM = os.environ.get("MOO_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Opened:
    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("file:", "data:", "blob:", "about:"))
                else self.requests.append(r.url)
            ),
        )
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)

    def figures_rendered(self):
        ids = self.page.evaluate(
            "() => Object.keys(JSON.parse(document.getElementById('payload').textContent).figures)"
        )
        out = []
        for fid in ids:  # off-screen figures render when scrolled into view
            self.page.locator(f"#{fid}").scroll_into_view_if_needed()
            self.page.wait_for_selector(f"#{fid}[data-rendered='1']", timeout=60_000)
            out.append(
                (fid, self.page.evaluate(f"() => !!document.querySelector('#{fid} .main-svg')"))
            )
        return out


def _study(tmp_path, name="s", **kw):
    study = synthetic_study(optuna.storages.InMemoryStorage(), name=name, **kw)
    return build_report(study, out=tmp_path / f"{abs(hash(name))}-{kw.get('n_objectives', 2)}.html")


@pytest.mark.parametrize(
    "kw",
    [
        {"n_trials": 80, "n_objectives": 2},
        {"n_trials": 80, "n_objectives": 3},
        {"n_trials": 120, "n_objectives": 4, "failed": 4, "infeasible_share": 0.2},
        {"n_trials": 1, "n_objectives": 3},
        {"n_trials": 0, "failed": 2},
    ],
    ids=["2obj", "3obj", "4obj-failed-infeasible", "single", "no-complete"],
)
def test_page_renders_offline_without_errors(browser, tmp_path, kw):
    o = Opened(browser, _study(tmp_path, **kw))
    assert o.errors == [] and o.requests == []
    rendered = o.figures_rendered()
    assert all(ok for _, ok in rendered), rendered
    if kw["n_trials"] > 1:
        assert {"fig-front", "fig-parallel", "fig-hv", "fig-importance", "fig-valtest"} <= {
            i for i, _ in rendered
        }
    rows = o.page.locator("#trials tbody tr").count()
    assert rows == min(100, kw["n_trials"] + kw.get("failed", 0))
    if kw["n_trials"] > 1:  # the reference front is drawn as its own series, and compared
        names = o.page.evaluate("() => document.getElementById('fig-front').data.map(t => t.name)")
        assert any(n.startswith("reference front") for n in names), names
        assert "vs reference front" in o.page.locator("#cards").inner_text().lower()
    if kw.get("n_objectives") == 4:  # ctr_auc is a metric: compared with the like-rate's
        ctr = o.page.locator("#cards").inner_text().lower()
        assert "ctr_auc vs like-rate" in ctr and "like-rate baseline's 0.5500" in ctr, ctr


def test_clicking_a_front_point_shows_config_and_export_command(browser, tmp_path):
    o = Opened(browser, _study(tmp_path, n_trials=60, n_objectives=2))
    # pixel position of the first Pareto-front point in the 2-D front figure
    n, x, y = o.page.evaluate("""() => {
        const gd = document.getElementById('fig-front');
        const tr = gd.data.findIndex(t => t.name === 'Pareto front');
        const t = gd.data[tr], fl = gd._fullLayout, box = gd.getBoundingClientRect();
        const i = 0;
        return [t.customdata[i], box.left + fl._size.l + fl.xaxis.l2p(t.x[i]),
                box.top + fl._size.t + fl.yaxis.l2p(t.y[i])];
    }""")
    o.page.evaluate("() => { document.getElementById('selected-title').textContent = 'none'; }")
    o.page.mouse.move(x, y)
    o.page.mouse.click(x, y)
    o.page.wait_for_function(
        f"document.getElementById('selected-title').textContent.startsWith('Trial {n} ')"
    )
    assert f"--trial {n} " in o.page.text_content("#export-cmd")
    # the front trial against EASE on the same test users, with the interval and a verdict
    vs = o.page.locator("#selected-metrics table.vs").inner_text()
    assert "minus EASE" in vs and "precision@10" in vs and "tail/precision@10" in vs
    assert any(v in vs for v in ("better", "worse", "within noise")), vs
    cards = o.page.locator("#cards").inner_text().lower()
    assert "most accurate front trial vs ease" in cards and "paired by user" in cards
    config = o.page.text_content("#config")
    assert "adapter:" in config or "adapter.type" in config
    assert o.errors == []


def test_workbench_table_and_filters(browser, tmp_path):
    o = Opened(browser, _study(tmp_path, n_trials=150, n_objectives=3, failed=2))
    o.page.click("#btn-compromise")
    assert o.page.text_content("#selected-title").startswith("Trial ")
    o.page.fill("#filter", "FAIL")
    o.page.wait_for_function(
        "document.getElementById('table-count').textContent.startsWith('2 trials')"
    )
    o.page.fill("#filter", "")
    o.page.check("#front-only")
    front_rows = o.page.locator("#trials tbody tr").count()
    assert 0 < front_rows < 150
    o.page.locator("#trials tbody tr").first.click()
    assert "on the Pareto front" in o.page.text_content("#selected-title")
    o.page.locator("#sliders input").first.fill("100")
    assert "closest front trial" in o.page.text_content("#weight-pick")
    assert o.page.locator("#tradeoffs tr").count() >= 2
    assert o.errors == []


def test_hostile_names_render_as_text(browser, tmp_path):
    path = _study(
        tmp_path,
        name="<script>alert(1)</script>",
        n_trials=20,
        param_value="<img src=x onerror=alert(2)>",
    )
    o = Opened(browser, path)
    assert o.page.text_content("h1") == "<script>alert(1)</script>"
    assert o.dialogs == [] and o.errors == []
    o.page.fill("#filter", "onerror")
    assert o.page.locator("#trials tbody tr").count() > 0
    assert "<img src=x onerror=alert(2)>" in o.page.text_content("#trials tbody")


def test_3d_view_axes_can_be_chosen(browser, tmp_path):
    o = Opened(browser, _study(tmp_path, n_trials=50, n_objectives=4))
    o.page.locator("#fig-3d").scroll_into_view_if_needed()
    o.page.wait_for_selector("#fig-3d[data-rendered='1']")
    o.page.select_option("#axes-3d select[data-axis='z']", "3")  # ctr_auc
    ok = o.page.evaluate("""() => {
        const gd = document.getElementById('fig-3d');
        const P = JSON.parse(document.getElementById('payload').textContent);
        const front = gd.data.find(t => t.name === 'Pareto front');
        const rows = P.rows.filter(r => r.pareto);
        return front.z.length === rows.length && front.z.every((z, i) => z === rows[i].obj[3])
            && gd._fullLayout.scene.zaxis.title.text.startsWith('ctr_auc');
    }""")
    assert ok and o.errors == []


def test_table_can_show_every_metric(browser, tmp_path):
    from moo_search import run_study
    from moo_search.report import build_study_report

    from ..helpers import tiny_spec

    spec = tiny_spec(
        **{
            "train.max_steps": 3,
            "out_dir": str(tmp_path / "s"),
            "search_space": {"fusion.alpha": {"float": [0.2, 0.8]}},
            "budget": {"n_trials": 2},
        }
    )
    build_study_report(spec, run_study(spec))
    o = Opened(browser, tmp_path / "s" / "index.html")
    before = o.page.locator("#trials thead th").count()
    o.page.check("#all-metrics")
    heads = o.page.locator("#trials thead th").all_text_contents()
    assert len(heads) > before + 8
    for m in ("recall@10", "ndcg@10", "coverage@10", "ctr_auc", "gini@10", "cost/seconds"):
        assert m in heads, heads
    assert o.errors == []


def test_a_selected_trial_shows_its_learning_curve_and_a_stopped_one_its_reason(browser, tmp_path):
    """Early stopping through the real driver (the light objective with rungs: quality = x);
    the page draws the curve of a finished trial and says why a stopped one stopped."""
    from moo_search.drivers import run_study
    from moo_search.study import ATTR

    from ..helpers import stepped_spec

    spec = stepped_spec(
        n_trials=4,
        out_dir=str(tmp_path / "es"),
        enqueue=[{"x": x} for x in (0.9, 0.8, 0.7, 0.01, 0.02)],
        driver={"early_stopping": {"enabled": True, "eta": 2, "min_trials": 3}},
    )
    study = run_study(spec)
    done = next(t for t in study.trials if t.state.name == "COMPLETE")
    pruned = next(
        t for t in study.trials if t.state.name == "PRUNED" and "moo:pruned_at" in t.user_attrs
    )
    # an inference-only variant of that fine-tune: no curve of its own, and the page says so
    attrs = {k: v for k, v in done.user_attrs.items() if k != ATTR.CURVE}
    study.add_trial(
        optuna.trial.create_trial(
            values=done.values,
            params=done.params,
            distributions=done.distributions,
            user_attrs={**attrs, ATTR.DERIVED_FROM: done.number, ATTR.KNOBS: {}},
        )
    )
    variant = study.trials[-1].number
    o = Opened(browser, build_report(study, out=tmp_path / "es.html"))
    o.page.evaluate(f"() => window.mooSelect({done.number})")
    o.page.wait_for_selector("#curve[data-rendered='1'] .main-svg", timeout=30_000)
    assert o.page.locator("#curve .scatterlayer .trace").count() == 2  # one line per objective
    o.page.evaluate(f"() => window.mooSelect({variant})")
    note = o.page.locator("#curve").inner_text()
    assert f"reuses the trained model of trial {done.number}" in note, note
    o.page.evaluate(f"() => window.mooSelect({pruned.number})")
    text = o.page.locator("#selected-metrics").inner_text()
    assert "stopped at rung" in text and pruned.user_attrs[ATTR.FAIL][:40] in text
    assert o.errors == []


def test_the_weight_sliders_pick_the_trial_python_picks(browser, tmp_path):
    """The page's sliders choose the front trial whose pseudo-weights are closest, as
    moo_search.pareto.pseudo_weight_index does on the same front."""
    import numpy as np

    from moo_search import pareto
    from moo_search.report import collect

    study = synthetic_study(optuna.storages.InMemoryStorage(), name="w", n_trials=80)
    data = collect(study)
    front = data.front
    F = front[[f"obj:{m}" for m in data.metrics]].to_numpy(dtype=np.float64)
    o = Opened(browser, build_report(study, out=tmp_path / "w.html"))
    for weights in ([90, 10], [10, 90], [50, 50]):
        for i, w in enumerate(weights):
            o.page.evaluate(
                f"""() => {{ const s = document.querySelector('#sliders input[data-i="{i}"]');
                s.value = "{w}"; s.dispatchEvent(new Event('input')); }}"""
            )
        picked = o.page.inner_text("#weight-pick")
        expected = int(
            front["number"].iloc[pareto.pseudo_weight_index(F, data.directions, weights)]
        )
        assert picked == f"closest front trial: {expected}", (weights, picked)
    assert o.errors == []
