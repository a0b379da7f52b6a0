"""Caches that heal: a bad entry of any cache is discarded with a warning naming the file and
recomputed; a cache that cannot be written is skipped; no temporary file outlives a write."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from moo_search import run_trial
from moo_search.recommender.cache import read_entry, write_entry
from moo_search.recommender.model import layer_cache
from moo_search.recommender.prepare import _prepare

from ..helpers import tiny_spec


def _spec(**kw):
    # a 3-layer tiny BERT adapted in its top layer only: the frozen-layer cache is used
    return tiny_spec(
        **{
            "model.tiny": {"hidden_size": 32, "num_hidden_layers": 3},
            "adapter.layers": [2],
            "train.max_steps": 6,
            **kw,
        }
    )


def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    layer_cache._MEMORY.clear()
    _prepare.cache_clear()


def _junk_zero(p):
    p.write_bytes(b"")


def _junk_bytes(p):
    p.write_bytes(b"\x80\x04 not a tensor at all")


def _wrong_shape(p):
    torch.save(torch.zeros(3, 4), p)


def _zeroed(p):
    t = torch.load(p, weights_only=True)
    torch.save(torch.zeros_like(t), p)  # same shape and dtype, wrong content


@pytest.mark.parametrize("damage", [_junk_zero, _junk_bytes, _wrong_shape, _zeroed])
def test_a_damaged_frozen_layer_entry_is_discarded_and_recomputed(
    damage, tmp_path, monkeypatch, caplog
):
    _fresh(tmp_path, monkeypatch)
    clean = run_trial(_spec())
    entries = sorted((tmp_path / "hidden").glob("*.pt"))
    assert entries and all((p.parent / (p.name + ".json")).is_file() for p in entries)
    for p in entries:
        damage(p)
    layer_cache._MEMORY.clear()
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        again = run_trial(_spec())
    assert again.metrics == clean.metrics  # the damaged entry was not used
    named = [r.getMessage() for r in caplog.records if "frozen-layer cache" in r.getMessage()]
    assert any(str(entries[0]) in m for m in named), named
    # healed: the entries are whole again and the next read is silent
    layer_cache._MEMORY.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        run_trial(_spec())
    assert not [r for r in caplog.records if "cache" in r.getMessage()]


@pytest.mark.parametrize("damage", ["empty", "shape", "zeroed"])
def test_a_damaged_backbone_entry_is_discarded_and_recomputed(
    damage, tmp_path, monkeypatch, caplog
):
    _fresh(tmp_path, monkeypatch)
    spec = _spec(**{"fusion.cf": "ease", "fusion.cf_params": {"lambda": 50.0}})
    clean = run_trial(spec)
    entries = [p for p in (tmp_path / "backbones").glob("*.npy")]
    assert entries
    for p in entries:
        if damage == "empty":
            p.write_bytes(b"")
        elif damage == "shape":
            np.save(p, np.zeros((2, 2), dtype=np.float32))
        else:
            np.save(p, np.zeros_like(np.load(p)))
    layer_cache._MEMORY.clear()
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        again = run_trial(spec)
    assert again.metrics == clean.metrics
    assert any("backbone cache" in r.getMessage() for r in caplog.records)


def _umount(path) -> None:
    """Unmount a test's tmpfs; lazily when a file on it is still open (the study database of
    an in-process run), so that no mount outlives the test."""
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _mount_tmpfs(path, options: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]).returncode:
        pytest.skip("this machine refuses to mount a tmpfs")


def test_a_read_only_cache_mount_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    """EROFS (a read-only mount) is not a PermissionError: the trial runs without the cache."""
    cache = tmp_path / "ro"
    _mount_tmpfs(cache, "ro,size=1m")
    try:
        _fresh(cache, monkeypatch)
        with caplog.at_level(logging.WARNING, logger="moo_search"):
            result = run_trial(_spec(**{"fusion.cf": "ease", "fusion.cf_params": {"lambda": 50.0}}))
        assert result.metrics["val"]
        warned = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
        assert any("backbone cache" in m for m in warned), warned
        assert any("frozen-layer cache" in m for m in warned), warned
    finally:
        _umount(cache)


def test_a_cache_path_that_is_a_file_is_skipped_with_a_warning(tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a directory")
    with caplog.at_level(logging.WARNING, logger="moo_search"):
        ok = write_entry(blocker / "x.npy", lambda f: np.save(f, np.ones(3)), what="test cache")
    assert not ok and "could not write the test cache" in caplog.text
    assert read_entry(blocker / "x.npy", np.load, what="test cache") is None


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    def boom(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    assert not write_entry(tmp_path / "x.npy", boom, what="test cache")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_degrades_to_no_cache(tmp_path, caplog):
    small = tmp_path / "small"
    _mount_tmpfs(small, "size=64k")
    try:
        big = np.ones(200_000, dtype=np.float64)  # 1.6 MB into 64 kB
        with caplog.at_level(logging.WARNING, logger="moo_search"):
            ok = write_entry(small / "x.npy", lambda f: np.save(f, big), what="test cache")
        assert not ok and "could not write the test cache" in caplog.text
        assert list(small.iterdir()) == []
    finally:
        _umount(small)


def test_a_study_directory_that_fills_up_mid_run_is_a_message_and_keeps_its_trials(
    tmp_path, capsys
):
    import optuna

    from moo_search.cli import main

    small = tmp_path / "small"
    _mount_tmpfs(small, "size=200k")
    try:
        code = main(
            [
                "run",
                str(Path(__file__).resolve().parents[2] / "studies" / "zdt1.yaml"),
                "--set",
                f"out_dir={small}/z",
                "--set",
                "budget.n_trials=3000",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "the study storage failed: database or disk is full" in err
        study = optuna.load_study(study_name="zdt1", storage=f"sqlite:///{small}/z/study.db")
        assert study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))  # nothing lost
    finally:
        _umount(small)


def test_a_cache_directory_that_is_a_file_is_one_message(tmp_path, monkeypatch, capsys):
    from moo_search.cli import main

    blocker = tmp_path / "cache"
    blocker.write_text("a file")
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(blocker))
    assert main(["data", "fetch", "movielens-100k"]) == 2
    err = capsys.readouterr().err
    assert f"{blocker}: a file is where a directory is needed" in err
    assert "MOO_SEARCH_CACHE" in err and "Traceback" not in err
