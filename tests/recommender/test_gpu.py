"""GPU tier (``-m gpu``): a trial on CUDA under bf16 autocast against the CPU's fp32 one, a
decoder with bf16 weights against the CPU's fp32, a 4-bit QLoRA trial against a bf16 one in
peak GPU memory, two workers on one GPU, the peak GPU memory in the trial cost, fused trials
against their solo runs and fuse auto choosing to fuse. Skipped, with the reason, on a
machine without CUDA (like our dev and CI machines): these run on a user's GPU host."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moo_search import run_trial

from ..helpers import tiny_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]

# bf16 on the GPU vs fp32 on the CPU: ranking metrics of a short fine-tune agree this closely
TOLERANCE = {"precision@10": 0.01, "ndcg@10": 0.015, "ild@10": 0.01, "ctr_auc": 0.01}


def _spec(device: str, amp: str, **kw):
    return tiny_spec(
        **{
            "train.device": device,
            "train.amp": amp,
            "train.max_steps": 30,
            "data.params": {"n_users": 400, "n_items": 200, "interactions_per_user": 30},
            **kw,
        }
    )


def test_a_cuda_bf16_trial_matches_the_cpu_fp32_metrics_within_tolerance():
    cpu = run_trial(_spec("cpu", "off"))
    gpu = run_trial(_spec("cuda", "bf16"))
    for metric, tol in TOLERANCE.items():
        a, b = cpu.metrics["test"][metric], gpu.metrics["test"][metric]
        assert abs(a - b) <= tol, (metric, a, b)


def test_the_trial_cost_records_the_peak_gpu_memory():
    r = run_trial(_spec("cuda", "auto"))
    total = torch.cuda.get_device_properties(0).total_memory / 2**20
    assert 0 < r.cost["peak_mem_mb"] < total


def test_two_workers_share_one_gpu(tmp_path, monkeypatch):
    from moo_search.drivers import run_study
    from moo_search.study import count_states

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    spec = tiny_spec(
        **{
            "train.device": "cuda",
            "train.max_steps": 10,
            "out_dir": str(tmp_path),
            "search_space": {"fusion.alpha": {"float": [0.2, 0.8]}},
            "budget": {"n_trials": 4},
        }
    )
    study = run_study(spec, storage=f"sqlite:///{tmp_path}/s.db", workers=2)
    assert count_states(study)["COMPLETE"] == 4
    assert all(t.user_attrs["moo:cost"]["peak_mem_mb"] > 0 for t in study.best_trials)


def _llama(device: str, **kw):
    return tiny_spec(
        **{
            "model.tiny.family": "llama",
            "train.device": device,
            "train.max_steps": 30,
            "data.params": {"n_users": 400, "n_items": 200, "interactions_per_user": 30},
            **kw,
        }
    )


def test_a_decoder_with_bf16_weights_on_cuda_matches_the_cpu_fp32_metrics():
    cpu = run_trial(_llama("cpu", **{"model.dtype": "float32", "train.amp": "off"}))
    gpu = run_trial(_llama("cuda", **{"model.dtype": "bfloat16", "train.amp": "bf16"}))
    for metric, tol in TOLERANCE.items():
        a, b = cpu.metrics["test"][metric], gpu.metrics["test"][metric]
        assert abs(a - b) <= tol, (metric, a, b)


def test_a_4bit_qlora_trial_trains_in_less_gpu_memory_than_bf16(tmp_path):
    """A random Llama of about 100M parameters saved as a local checkpoint: QLoRA (4-bit
    NF4 base) against bf16 weights, same trial otherwise."""
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes")
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from moo_search.recommender.model.encoder import _packaged_path

    tok = AutoTokenizer.from_pretrained(str(_packaged_path()))
    cfg = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaModel(cfg).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    base = {
        "model.tiny": None,
        "model.name_or_path": str(tmp_path / "llama"),
        "train.layer_cache": False,
    }
    bf16 = run_trial(_llama("cuda", **base, **{"model.dtype": "bfloat16"}))
    torch.cuda.empty_cache()
    q4 = run_trial(_llama("cuda", **base, **{"model.quantization": {"bits": 4}}))
    assert np.mean(q4.history["loss"][-5:]) < np.mean(q4.history["loss"][:5])
    assert q4.cost["peak_mem_mb"] < bf16.cost["peak_mem_mb"], (q4.cost, bf16.cost)


def test_fused_cuda_bf16_trials_match_their_solo_runs_within_tolerance():
    from moo_search.recommender.trial_fused import TrialRequest, run_trials_together

    quiet = {"model.dropout": 0.0, "adapter.dropout": 0.0}
    configs = [{"adapter.r": 2}, {"adapter.r": 8, "train.lr": 1e-2}, {"adapter.type": "dora"}]
    specs = [_spec("cuda", "bf16", **quiet, **kw) for kw in configs]
    solo = [run_trial(s) for s in specs]
    fused = run_trials_together([TrialRequest(s) for s in specs])
    for a, b in zip(solo, fused, strict=True):
        assert not isinstance(b, BaseException), b
        for metric, tol in TOLERANCE.items():
            assert abs(a.metrics["test"][metric] - b.metrics["test"][metric]) <= tol, metric
        assert b.cost["fused_trials"] == len(configs)


def test_fuse_auto_fuses_on_a_gpu():
    from moo_search.recommender.trial_fused import choose_fuse

    k, per_example = choose_fuse(_spec("cuda", "bf16"))
    assert k > 1, per_example  # a tiny model leaves a GPU idle at one batch
