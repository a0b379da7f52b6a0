"""An export ships the model whose metrics it claims (issue 13): artifacts bound to their
study and trial by where they live and by the SHA-256 each trial records."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from moo_search import ExportError, export_trial, load_exported
from moo_search.drivers import run_study
from moo_search.report import build_study_report
from moo_search.study import study_home

from ..helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _spec(tmp_path, **kw):
    return tiny_spec(
        **{
            "out_dir": str(tmp_path / "reports" / "tiny"),
            "search_space": {"fusion.alpha": {"float": [0.2, 0.8]}},
            "budget": {"n_trials": 2},
            **kw,
        }
    )


def test_two_studies_from_one_spec_keep_their_own_artifacts_and_dashboards(tmp_path):
    a_url, b_url = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    spec = _spec(tmp_path)
    a = run_study(spec, storage=a_url, study_name="a")
    build_study_report(spec, a, storage=a_url)
    a_home = study_home(spec, a_url, a)
    a_files = {p: p.read_bytes() for p in a_home.rglob("*") if p.is_file()}
    assert (a_home / "index.html").is_file() and (a_home / "spec.yaml").is_file()
    short = _spec(tmp_path, **{"train.max_steps": 5})
    b = run_study(short, storage=b_url, study_name="b", n_trials=1)
    build_study_report(short, b, storage=b_url)
    b_home = study_home(short, b_url, b)
    assert b_home != a_home and (b_home / "index.html").is_file()
    # study b wrote nothing into study a's home
    assert {p: p.read_bytes() for p in a_home.rglob("*") if p.is_file()} == a_files

    # study a's trial 0 exports study a's weights: its lists are the ones a evaluated
    out = export_trial(a_url, study_name="a", trial=0, out=tmp_path / "a0")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trial_artifacts"]["status"] == "verified"
    rec = load_exported(out)
    z = np.load(a_home / "artifacts" / "trial_00000" / "lists.npz")
    for u, expected in list(zip(z["test_users"], z["test_lists"]))[:50]:
        assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in expected]


def test_an_overwritten_artifact_is_refused_naming_the_trial_and_file(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    spec = _spec(tmp_path)
    study = run_study(spec, storage=url, study_name="s")
    art = study_home(spec, url, study) / "artifacts" / "trial_00001"
    heads = art / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[:-1] + b"\0")  # another run's bytes, same name
    with pytest.raises(ExportError, match=r"trial 1: artifact .*heads\.safetensors.*SHA-256"):
        export_trial(url, study_name="s", trial=1, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_the_report_flags_an_overwritten_artifact_and_offers_no_export(tmp_path, capsys):
    from moo_search.cli import main
    from moo_search.study import sha256_file

    url = f"sqlite:///{tmp_path}/s.db"
    spec = _spec(tmp_path)
    study = run_study(spec, storage=url, study_name="s")
    heads = study_home(spec, url, study) / "artifacts" / "trial_00001" / "heads.safetensors"
    recorded = study.trials[1].user_attrs["moo:artifact_sha256"]["heads.safetensors"]
    heads.write_bytes(heads.read_bytes()[:-1] + b"\0")
    out = tmp_path / "page.html"
    assert main(["report", url, "--study-name", "s", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    warning = next(ln for ln in printed.splitlines() if ln.startswith("warning: trial 1:"))
    assert "heads.safetensors" in warning and recorded in warning and sha256_file(heads) in warning
    rows = {r["n"]: r for r in _page_payload(out.read_text())["rows"]}
    assert rows[0]["artifacts"] == "verified"
    assert rows[1]["artifacts"] == "altered" and recorded in rows[1]["artifact_problem"]


def test_a_trial_without_recorded_hashes_exports_as_unverified(tmp_path):
    """Studies written before artifact hashes open and export; the bundle says so."""
    url = f"sqlite:///{tmp_path}/old.db"
    spec = _spec(tmp_path, **{"budget": {"n_trials": 1}})
    study = run_study(spec, storage=url, study_name="old")
    import sqlite3

    with sqlite3.connect(tmp_path / "old.db") as db:  # as the old layout left it: no hashes
        db.execute(
            "DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = ?",
            (study.trials[0]._trial_id, "moo:artifact_sha256"),
        )
    out = export_trial(url, study_name="old", trial=0, out=tmp_path / "old0")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trial_artifacts"]["status"] == "unverified"
    assert "unverified" in (out / "MODEL_CARD.md").read_text()
    load_exported(out)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    d = tmp_path_factory.mktemp("safe") / "study"
    spec = tiny_spec(
        **{
            "out_dir": str(d),
            "storage": f"sqlite:///{d}/study.db",
            "search_space": {"fusion.alpha": {"float": [0.2, 0.8]}},
            "budget": {"n_trials": 1},
            "train.max_steps": 3,
        }
    )
    run_study(spec)
    return d


def _page_payload(html):
    import re

    m = re.search(r'<script type="application/json" id="payload">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def _snapshot(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize(
    "where, expect",
    [
        ("study", "Nothing was deleted"),
        ("cwd", "working directory"),
        ("user-files", "not an export bundle"),
        ("a-file", "not a directory"),
    ],
)
def test_export_force_never_deletes_what_is_not_a_bundle(
    small_study, tmp_path, monkeypatch, capsys, where, expect
):
    from moo_search.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("mine")
    (tmp_path / "a-file").write_text("mine")
    out = {"study": small_study, "cwd": tmp_path, "user-files": user, "a-file": tmp_path / "a-file"}
    before_study, before_cwd = _snapshot(small_study), _snapshot(tmp_path)
    code = main(["export", str(small_study), "--trial", "0", "--out", str(out[where]), "--force"])
    err = capsys.readouterr().err
    assert code != 0 and expect in err and "Traceback" not in err
    assert _snapshot(small_study) == before_study and _snapshot(tmp_path) == before_cwd
    assert (user / "thesis.tex").read_text() == "mine"


def test_export_force_replaces_a_previous_bundle_atomically(small_study, tmp_path):
    out = export_trial(small_study, trial=0, out=tmp_path / "b")
    first = json.loads((out / "manifest.json").read_text())["created"]
    (out / "stale.txt").write_text("x")  # an altered bundle is still ours: replaceable
    export_trial(small_study, trial=0, out=out, force=True)
    assert not (out / "stale.txt").exists()
    load_exported(out)
    assert json.loads((out / "manifest.json").read_text())["created"] >= first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
