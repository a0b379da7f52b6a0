"""Throughput features keep results: the frozen-layer cache computes exactly what the
uncached path does; bf16 autocast is chosen only where it is fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moo_search import run_trial
from moo_search.recommender.model import layer_cache
from moo_search.recommender.train._setup import autocast_for, cpu_has_fast_bf16

from ..helpers import run_kept, tiny_spec


def _spec(**kw):
    # a 3-layer tiny BERT adapted in its top layer only: embeddings + 2 layers are frozen
    return tiny_spec(
        **{
            "model.tiny": {"hidden_size": 32, "num_hidden_layers": 3},
            "adapter.layers": [2],
            "train.max_steps": 12,
            **kw,
        }
    )


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_cached_and_uncached_frozen_layers_give_identical_metrics(amp, tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    layer_cache._MEMORY.clear()
    uncached = run_kept(_spec(**{"train.layer_cache": False, "train.amp": amp}))
    cached = run_kept(_spec(**{"train.layer_cache": True, "train.amp": amp}))
    model = cached.model
    assert model.prefix is not None and model.prefix.n == 2
    assert uncached.model.prefix._states == {}  # the same layer path, no cache
    assert list((tmp_path / "hidden").glob("*.pt")), "the prefix output was cached on disk"
    assert cached.metrics == uncached.metrics
    assert cached.history["loss"] == uncached.history["loss"]
    # a second trial of the study reads the cache instead of recomputing it
    layer_cache._MEMORY.clear()
    again = run_trial(_spec(**{"train.layer_cache": True, "train.amp": amp}))
    assert again.metrics == cached.metrics


def test_the_cache_falls_back_to_full_encoding_when_it_would_not_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(layer_cache, "available_bytes", lambda: 1000)
    layer_cache._MEMORY.clear()
    r = run_kept(_spec(**{"train.layer_cache": True, "train.amp": "off"}))
    prefix = r.model.prefix
    assert prefix is not None and prefix._states == {}  # nothing attached: encoded in full
    assert not (tmp_path / "hidden").exists()
    assert r.metrics == run_trial(_spec(**{"train.layer_cache": False, "train.amp": "off"})).metrics


def test_no_prefix_when_every_layer_is_adapted():
    r = run_kept(tiny_spec(**{"train.max_steps": 2}))
    assert r.model.prefix is None


def test_bf16_autocast_on_the_cpu_only_where_it_is_fast(monkeypatch):
    cpu = torch.device("cpu")
    assert autocast_for(cpu, "off") == (None, False)
    factory, scaler = autocast_for(cpu, "bf16")
    assert factory is not None and not scaler
    with factory():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    auto, _ = autocast_for(cpu, "auto")
    assert (auto is not None) == cpu_has_fast_bf16()


def test_a_bf16_trial_keeps_fp32_weights_and_loss():
    r = run_kept(tiny_spec(**{"train.max_steps": 5, "train.amp": "bf16"}))
    model = r.model
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert np.isfinite(r.history["loss"]).all() and r.value("precision@10") > 0
