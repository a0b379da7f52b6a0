"""Bad input through the real CLI (``moo_search.cli.main``): every case exits non-zero with a
message that names the field or file, never a traceback, and loses nothing.

Each case is (id, argv, expected exit code, phrases the message must hold). ``{d}`` in argv
is the case's working directory with a small ZDT1 study (``{d}/zdt``), a tiny default-trial
study with artifacts (``{d}/tiny``) and the files written by ``_files``.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from pathlib import Path

import optuna
import pytest
import yaml

from moo_search.cli import main

from .helpers import TINY

optuna.logging.set_verbosity(optuna.logging.ERROR)

ZDT = {
    "name": "zdt",
    "objective": "zdt1",
    "problem": {"n_var": 3},
    "objectives": [
        {"metric": "f1", "direction": "minimize"},
        {"metric": "f2", "direction": "minimize"},
    ],
    "driver": {"population": 4, "reference_point": [1.1, 1.1]},
    "budget": {"n_trials": 4},
}


def _spec(**changes) -> dict:
    raw = copy.deepcopy(ZDT)
    raw.update(changes)
    return raw


def _tiny(**changes) -> dict:
    raw = copy.deepcopy(TINY)
    raw["train"] = {**raw["train"], "max_steps": 3}
    raw.update({"search_space": {"fusion.alpha": {"float": [0.2, 0.8]}}, "budget": {"n_trials": 1}})
    raw.update(changes)
    return raw


SPECS = {  # file name -> spec data (written as YAML) or raw bytes
    "ok.yaml": _spec(),
    "binary.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    "empty.yaml": b"",
    "notyaml.yaml": b"name: [unclosed\n",
    "list.yaml": b"- a\n- b\n",
    "typo.yaml": {**_spec(), "search_spcae": {}},
    "lorax.yaml": _tiny(adapter={"type": "lorax"}),
    "space-lorax.yaml": _tiny(search_space={"adapter.type": {"categorical": ["lora", "lorax"]}}),
    "space-alpha.yaml": _tiny(search_space={"fusion.alpha": {"float": [1.5, 2.0]}}),
    "space-where.yaml": _tiny(search_space={"trian.lr": {"float": [0.1, 0.2]}}),
    "metric.yaml": _tiny(objectives=[{"metric": "precison@10", "direction": "maximize"}]),
    "dupes.yaml": _tiny(
        objectives=[
            {"metric": "ild@10", "direction": "maximize"},
            {"metric": "ild@10", "direction": "maximize"},
        ]
    ),
    "constraint.yaml": _tiny(constraints=["precision@10 > 0.1"]),
    "backend.yaml": _spec(driver={"backend": "optuns"}),
    "pymoo-tpe.yaml": _spec(driver={"backend": "pymoo", "algorithm": "tpe"}),
    "refpoint.yaml": _spec(driver={"reference_point": [1.0]}),
    "nsga3-one.yaml": _spec(
        objectives=[{"metric": "f1", "direction": "minimize"}], driver={"algorithm": "nsga3"}
    ),
    "csv-nopath.yaml": _tiny(data={"dataset": "csv"}),
    "dataset.yaml": _tiny(data={"dataset": "movielens-1k"}),
    "cf.yaml": _tiny(fusion={"cf": "eas"}),
    "serve-no-tower.yaml": _tiny(fusion={"alpha": 0.0, "serve_alpha": 0.3}),
    "direction.yaml": _spec(objectives=[{"metric": "f1", "direction": "up"}]),
    "dimension.yaml": _spec(search_space={"x0": {"float": [1.0, 0.0]}}),
    "csv-empty.yaml": _tiny(data={"dataset": "csv", "path": "empty.csv"}),
    "csv-cols.yaml": _tiny(data={"dataset": "csv", "path": "nocols.csv"}),
    "zdt-other-space.yaml": _spec(problem={"n_var": 5}, out_dir="zdt"),
}


def _files(d: Path) -> None:
    for name, content in SPECS.items():
        data = content if isinstance(content, bytes) else yaml.safe_dump(content).encode()
        (d / name).write_bytes(data)
    (d / "empty.csv").write_bytes(b"")
    (d / "nocols.csv").write_text("a,b\n1,2\n")
    (d / "empty.db").write_bytes(b"")
    (d / "afile").write_text("a user's file\n")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A finished ZDT1 study and a finished tiny default-trial study (with artifacts)."""
    d = tmp_path_factory.mktemp("bad")
    zdt = d / "zdt-spec.yaml"
    zdt.write_text(yaml.safe_dump(_spec(out_dir=str(d / "zdt"))))
    assert main(["run", str(zdt), "--no-report"]) == 0
    tiny = d / "tiny-spec.yaml"
    tiny.write_text(yaml.safe_dump(_tiny(out_dir=str(d / "tiny"))))
    assert main(["run", str(tiny), "--no-report"]) == 0
    # a storage with two studies
    two = f"sqlite:///{d}/two.db"
    for name in ("one", "other"):
        assert main(["run", str(zdt), "--storage", two, "--study-name", name, "--no-report"]) == 0
    return d


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix not in (".db-journal",):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


CASES = [
    # ---- the spec file
    ("missing-file", ["run", "{d}/nope.yaml"], 2, ["nope.yaml", "not found"]),
    ("binary-file", ["run", "{d}/binary.yaml"], 2, ["binary.yaml", "not a text file"]),
    ("empty-file", ["run", "{d}/empty.yaml"], 2, ["empty.yaml", "empty"]),
    ("not-yaml", ["run", "{d}/notyaml.yaml"], 2, ["notyaml.yaml", "not valid YAML"]),
    ("top-level-list", ["run", "{d}/list.yaml"], 2, ["list.yaml", "mapping"]),
    ("unknown-key", ["run", "{d}/typo.yaml"], 2, ["search_spcae", "did you mean 'search_space'"]),
    ("adapter-type", ["trial", "{d}/lorax.yaml"], 2, ["adapter.type", "lorax", "'lora'"]),
    ("space-choice", ["run", "{d}/space-lorax.yaml"], 2, ["search_space.adapter.type", "lorax"]),
    ("space-bounds", ["run", "{d}/space-alpha.yaml"], 2, ["search_space.fusion.alpha", "1.5"]),
    ("space-section", ["run", "{d}/space-where.yaml"], 2, ["search_space.trian.lr", "'train'"]),
    ("metric", ["run", "{d}/metric.yaml"], 2, ["objectives.0.metric", "precison@10"]),
    ("duplicate-objectives", ["run", "{d}/dupes.yaml"], 2, ["objectives", "duplicates"]),
    ("constraint", ["run", "{d}/constraint.yaml"], 2, ["constraints", "precision@10 > 0.1"]),
    ("backend", ["run", "{d}/backend.yaml"], 2, ["driver.backend", "did you mean 'optuna'"]),
    ("pymoo-algorithm", ["run", "{d}/pymoo-tpe.yaml"], 2, ["driver.algorithm", "'tpe'"]),
    ("reference-point", ["run", "{d}/refpoint.yaml"], 2, ["driver.reference_point", "one value"]),
    ("nsga3-one-objective", ["run", "{d}/nsga3-one.yaml"], 2, ["driver.algorithm", "nsga3"]),
    ("csv-without-path", ["trial", "{d}/csv-nopath.yaml"], 2, ["data.path", "csv"]),
    ("dataset-name", ["trial", "{d}/dataset.yaml"], 2, ["data.dataset", "movielens-1k"]),
    ("backbone-name", ["trial", "{d}/cf.yaml"], 2, ["fusion.cf", "did you mean 'ease'"]),
    (
        "serve-without-tower",
        ["trial", "{d}/serve-no-tower.yaml", "--no-baselines"],
        2,
        ["fusion.serve_alpha", "0.3", "fusion.alpha is 0"],
    ),
    ("direction", ["run", "{d}/direction.yaml"], 2, ["objectives.0.direction", "'up'"]),
    ("dimension-order", ["run", "{d}/dimension.yaml"], 2, ["search_space.x0", "low must be <="]),
    # ---- overrides and flags
    ("set-no-equals", ["run", "{d}/ok.yaml", "--set", "train.lr"], 2, ["--set", "path=value"]),
    (
        "set-bad-value",
        ["trial", "{d}/lorax.yaml", "--set", "adapter.type=lora", "--set", "train.lr=0"],
        2,
        ["train.lr", "> 0"],
    ),
    (
        "set-list-index",
        ["run", "{d}/ok.yaml", "--set", "objectives.7.direction=minimize"],
        2,
        ["objectives", "not an index"],
    ),
    ("n-trials-zero", ["run", "{d}/ok.yaml", "--n-trials", "0"], 2, ["--n-trials", ">= 1"]),
    ("n-trials-negative", ["run", "{d}/ok.yaml", "--n-trials", "-3"], 2, ["--n-trials", ">= 1"]),
    ("workers-zero", ["run", "{d}/ok.yaml", "--workers", "0"], 2, ["--workers", ">= 1"]),
    (
        "unknown-data-name",
        ["data", "info", "movielens-1k"],
        2,
        ["not a dataset the cache fetches", "did you mean 'movielens-100k'"],
    ),
    # ---- storages
    (
        "sqlite-memory-url",
        ["run", "{d}/ok.yaml", "--storage", "sqlite://"],
        2,
        ["in-memory", "sqlite:///path"],
    ),
    (
        "sqlite-memory-path",
        ["run", "{d}/ok.yaml", "--storage", "sqlite:///:memory:"],
        2,
        ["in-memory"],
    ),
    ("bogus-url", ["run", "{d}/ok.yaml", "--storage", "bogus://x"], 2, ["storage bogus://x"]),
    (
        "resume-other-space",
        ["run", "{d}/zdt-other-space.yaml"],
        2,
        ["different problem", "n_var", "Nothing was written"],
    ),
    (
        "report-empty-db",
        ["report", "{d}/empty.db"],
        2,
        ["empty.db", "not an SQLite study database"],
    ),
    (
        "report-missing-db",
        ["report", "sqlite:///{d}/missing/dir/x.db"],
        2,
        ["no such study database"],
    ),
    ("report-no-study-dir", ["report", "{d}"], 2, ["no study.db"]),
    ("report-two-studies", ["report", "sqlite:///{d}/two.db"], 2, ["2 studies", "--study-name"]),
    (
        "report-wrong-name",
        ["report", "sqlite:///{d}/two.db", "--study-name", "nah"],
        2,
        ["no study 'nah'", "one, other"],
    ),
    (
        "worker-no-study",
        ["worker", "{d}/ok.yaml", "--storage", "sqlite:///{d}/two.db", "--study-name", "nah"],
        2,
        ["no study named 'nah'"],
    ),
    # ---- export
    (
        "export-both",
        ["export", "{d}/tiny", "--trial", "0", "--select", "knee", "--out", "{d}/x"],
        2,
        ["exactly one of --trial"],
    ),
    ("export-neither", ["export", "{d}/tiny", "--out", "{d}/x"], 2, ["exactly one of --trial"]),
    (
        "export-no-trial",
        ["export", "{d}/tiny", "--trial", "999", "--out", "{d}/x"],
        2,
        ["--trial 999", "no such trial"],
    ),
    (
        "export-bad-rule",
        ["export", "{d}/tiny", "--select", "best", "--out", "{d}/x"],
        2,
        ["--select 'best'", "knee, compromise"],
    ),
    (
        "export-bad-metric",
        ["export", "{d}/tiny", "--select", "best:nope@10", "--out", "{d}/x"],
        2,
        ["unknown metric 'nope@10'"],
    ),
    (
        "export-bad-where",
        ["export", "{d}/tiny", "--select", "knee", "--where", "ild@10 = 1", "--out", "{d}/x"],
        2,
        ["--where", "ild@10 = 1"],
    ),
    (
        "export-empty-where",
        ["export", "{d}/tiny", "--select", "knee", "--where", "ild@10 >= 5", "--out", "{d}/x"],
        2,
        ["no front trial satisfies", "front ranges"],
    ),
    (
        "export-out-file",
        ["export", "{d}/tiny", "--trial", "0", "--out", "{d}/afile", "--force"],
        2,
        ["afile", "not a directory"],
    ),
    (
        "export-out-cwd",
        ["export", "{d}/tiny", "--trial", "0", "--out", ".", "--force"],
        2,
        ["working directory"],
    ),
    (
        "export-out-study",
        ["export", "{d}/tiny", "--trial", "0", "--out", "{d}/tiny", "--force"],
        2,
        ["not an export bundle", "Nothing was deleted"],
    ),
    (
        "export-custom-objective-verify",
        ["export", "{d}/zdt", "--trial", "0", "--out", "{d}/x", "--verify"],
        2,
        ["--verify", "exports a selection", "not a model"],
    ),
    # ---- data files
    ("csv-empty", ["trial", "{d}/csv-empty.yaml", "--no-baselines"], 2, ["empty.csv"]),
    ("csv-columns", ["trial", "{d}/csv-cols.yaml", "--no-baselines"], 2, ["nocols.csv", "user"]),
]


@pytest.mark.parametrize(("case", "argv", "code", "phrases"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_message_and_loses_nothing(studies, case, argv, code, phrases, capsys):
    d = studies
    _files(d)
    before = {p: _tree_digest(d / p) for p in ("zdt", "tiny")}
    cwd = os.getcwd()
    os.chdir(d)
    try:
        got = main([a.replace("{d}", str(d)) for a in argv])
    except SystemExit as e:  # argparse usage errors
        got = e.code
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in: {err}"
    assert {p: _tree_digest(d / p) for p in ("zdt", "tiny")} == before  # nothing lost
    assert not (d / "missing").exists() and not (d / "x").exists()  # and nothing created
    assert (d / "afile").read_text() == "a user's file\n"
    assert (d / "empty.db").read_bytes() == b""  # a read command wrote nothing into it


def test_run_on_a_read_only_study_database_says_so(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_spec(out_dir=str(tmp_path / "s"))))
    assert main(["run", str(spec), "--no-report"]) == 0
    db = tmp_path / "s" / "study.db"
    db.chmod(0o444)
    try:
        if not os.access(db, os.W_OK):
            assert main(["run", str(spec), "--n-trials", "6"]) == 2
            assert "read-only" in capsys.readouterr().err
        else:  # root may write any file: ask as an unprivileged user, as a user would meet it
            _run_read_only_as_nobody(tmp_path, spec, db)
    finally:
        db.chmod(0o644)
    shutil.rmtree(tmp_path / "s")


def _run_read_only_as_nobody(tmp_path, spec, db) -> None:
    import subprocess
    import sys

    from .conftest import REPO

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and no setpriv to drop to an unprivileged user")
    before = db.read_bytes()
    for p in [tmp_path, *tmp_path.parents]:  # pytest's tmp dirs are root's alone
        if p == Path("/tmp"):
            break
        p.chmod(p.stat().st_mode | 0o055)
    (tmp_path / "s").chmod(0o777)  # the directory is writable: only the file is read-only
    private = tmp_path / "private-cache"  # a cache the user may not read (root's own)
    (private / "movielens-100k").mkdir(parents=True)
    private.chmod(0o700)
    drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]

    def as_nobody(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*drop, sys.executable, "-m", "moo_search.cli", *args],
            cwd=REPO,
            env={
                "PYTHONPATH": str(REPO),
                "PATH": "/usr/bin:/bin",
                "MOO_SEARCH_CACHE": str(private),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = as_nobody("run", str(spec), "--n-trials", "6")
    assert done.returncode == 2, done.stderr
    assert "read-only" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert db.read_bytes() == before  # nothing written
    done = as_nobody("data", "info", "movielens-100k")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{private}/movielens-100k" in done.stderr and "permission denied" in done.stderr
    assert "MOO_SEARCH_CACHE" in done.stderr


def test_a_database_that_refuses_writes_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    """What SQLite says for a read-only file (as a non-root user sees it) reaches the user as
    one line naming the storage."""
    import sqlalchemy.exc

    import moo_search.drivers._run as run_mod

    def refuse(*a, **k):
        raise sqlalchemy.exc.OperationalError(
            "INSERT", {}, Exception("attempt to write a readonly database")
        )

    monkeypatch.setattr(run_mod, "open_study", refuse)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_spec(out_dir=str(tmp_path / "s"))))
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "the study storage failed: attempt to write a readonly database" in err
    assert "read-only" in err and "Traceback" not in err


def test_early_stopping_with_an_objective_a_rung_cannot_measure_names_the_field():
    from moo_search.errors import SpecError

    from .helpers import tiny_spec

    es = {"enabled": True, "rungs": [0.5]}
    objectives = [
        {"metric": "precision@10", "direction": "maximize"},
        {"metric": "cost/train_tokens", "direction": "minimize"},
    ]
    with pytest.raises(SpecError, match=r"driver\.early_stopping.*cost/train_tokens"):
        tiny_spec(**{"driver.early_stopping": es, "objectives": objectives})
    objectives[1]["metric"] = "cost/trainable_params"  # measured at every rung
    tiny_spec(**{"driver.early_stopping": es, "objectives": objectives})


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", "n" * 300])
def test_a_study_name_that_is_not_one_file_name_is_refused(name, tmp_path, capsys):
    from moo_search.cli import main

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: ok\nobjective: zdt1\nobjectives:\n  - {metric: f1, direction: minimize}\n"
    )
    assert main(["run", str(spec), "--set", f"name={name}"]) == 2
    err = capsys.readouterr().err
    assert "name" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists() and not list(tmp_path.parent.glob("x"))


def test_an_overview_field_that_matches_no_item_is_refused_naming_item_text(monkeypatch):
    import pandas as pd

    import moo_search.recommender.data as data_mod
    from moo_search.errors import DataError
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset

    table = pd.DataFrame(
        {
            "key": ["a film nobody rated"],
            "year": [1999],
            "overview": ["text"],
            "tagline": [""],
            "keywords": [""],
        }
    )
    monkeypatch.setattr(data_mod, "overview_table", lambda: table)
    cfg = DataConfig(dataset="synthetic", item_text=["title", "overview"])
    with pytest.raises(DataError, match=r"data\.item_text: 'overview' is matched for 0\.0%"):
        load_dataset(cfg)


def test_a_failed_download_names_the_dataset_and_the_field_that_asked(tmp_path, monkeypatch):
    import subprocess

    import moo_search.recommender.data.sources as sources
    from moo_search.errors import DataError
    from moo_search.recommender.config import DataConfig
    from moo_search.recommender.data import load_dataset

    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(
        sources.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "ERROR: no network here"),
    )
    cfg = DataConfig(dataset="synthetic", item_text=["title", "overview"])
    with pytest.raises(DataError) as err:
        load_dataset(cfg)
    msg = str(err.value)
    assert "data.item_text" in msg and "movie-overviews: could not download" in msg
    assert "no network here" in msg
