"""The dashboard's data step and page on edge cases (no browser; see test_browser.py)."""

from __future__ import annotations

import json
import re

import optuna
import pytest

from moo_search.recommender.testing import synthetic_study
from moo_search.report import build_report, collect

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _payload(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="payload">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


@pytest.mark.parametrize("m", [2, 3, 4])
def test_page_for_2_3_4_objectives(tmp_path, m):
    study = synthetic_study(optuna.storages.InMemoryStorage(), n_trials=60, n_objectives=m)
    out = build_report(study, out=tmp_path / "index.html")
    html = out.read_text()
    p = _payload(html)
    assert (
        len(p["rows"]) == 60
        and p["metrics"] == ["precision@10", "ild@10", "novelty@10", "ctr_auc"][:m]
    )
    assert (
        "fig-front" in p["figures"] and "fig-parallel" in p["figures"] and "fig-hv" in p["figures"]
    )
    assert ("fig-3d" in p["figures"]) == (m >= 3)
    assert p["knee"] is not None and p["compromise"] is not None
    # plotly.js is inline: no element loads anything from elsewhere
    assert "<script src=" not in html and "<link " not in html
    assert "connect-src 'none'" in html  # and the page may not fetch at run time


def test_failed_and_infeasible_trials(tmp_path):
    study = synthetic_study(
        optuna.storages.InMemoryStorage(),
        n_trials=40,
        n_objectives=2,
        failed=3,
        infeasible_share=0.3,
    )
    data = collect(study)
    assert data.counts["FAIL"] == 3
    assert (~data.complete["feasible"]).sum() > 0
    assert not data.rows.loc[
        ~data.rows["feasible"].astype(bool), "pareto"
    ].any()  # infeasible never on the front
    p = _payload(build_report(study, out=tmp_path / "i.html").read_text())
    reasons = [r["reason"] for r in p["rows"] if r["state"] == "FAIL"]
    assert len(reasons) == 3 and all("loss became nan" in r for r in reasons)


def test_single_complete_trial_and_empty_study(tmp_path):
    one = synthetic_study(optuna.storages.InMemoryStorage(), n_trials=1, n_objectives=3, name="one")
    p = _payload(build_report(one, out=tmp_path / "one.html").read_text())
    assert p["knee"] == 0 and len(p["rows"]) == 1
    empty = synthetic_study(optuna.storages.InMemoryStorage(), n_trials=0, failed=2, name="empty")
    p = _payload(build_report(empty, out=tmp_path / "empty.html").read_text())
    assert p["knee"] is None and p["figures"] == {} and p["hv"] is None


def test_names_and_values_are_escaped(tmp_path):
    study = synthetic_study(
        optuna.storages.InMemoryStorage(),
        n_trials=20,
        name="<script>alert(1)</script>",
        param_value="<img src=x onerror=alert(2)>",
        failed=1,
    )
    html = build_report(study, out=tmp_path / "x.html").read_text()
    body = html.split("</head>", 1)[1]
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # the header shows it as text
    assert "<img src=x" not in body
    assert "\\u003cscript\\u003ealert(1)" in body  # JSON payload cannot close its script element


def test_build_report_from_storage_url_and_directory(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    synthetic_study(url, n_trials=10)
    out = build_report(str(tmp_path))
    assert out == tmp_path / "index.html" and out.stat().st_size > 1_000_000  # plotly.js inline
    p = _payload(out.read_text())
    assert p["export_base"] == f"moo-search export {tmp_path}"


def test_importance_finds_the_parameter_that_matters():
    study = synthetic_study(optuna.storages.InMemoryStorage(), n_trials=200, n_objectives=2)
    imp = collect(study).importance
    for m in ("precision@10", "ild@10"):
        assert max(imp[m], key=imp[m].get) == "loss.weights.novelty"


def test_report_cli_errors_are_clear(tmp_path, capsys):
    from moo_search.cli import main

    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no study.db" in capsys.readouterr().err


def test_the_pages_export_command_names_the_study_when_the_database_holds_two(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    synthetic_study(url, n_trials=5, name="one")
    synthetic_study(url, n_trials=5, name="two")
    out = build_report(str(tmp_path), study_name="two")
    assert _payload(out.read_text())["export_base"] == (
        f"moo-search export {tmp_path} --study-name two"
    )


def test_a_failed_page_write_leaves_no_temporary_file(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    synthetic_study(url, n_trials=5)
    target = tmp_path / "out"
    target.mkdir()  # --out naming a directory: the rename fails
    with pytest.raises(OSError):
        build_report(str(tmp_path), out=target)
    assert not list(tmp_path.glob(".index-*")), list(tmp_path.iterdir())
