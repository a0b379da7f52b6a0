"""GPU tier (``-m gpu``): a trial on CUDA under bf16 autocast against the CPU's fp32 one, two
workers on one GPU, the peak GPU memory in the trial cost. Skipped, with the reason, on a
machine without CUDA (like our dev and CI machines): these run on a user's GPU host."""

from __future__ import annotations

import pytest
import torch

from moo_search import run_trial

from .helpers import tiny_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]

# bf16 on the GPU vs fp32 on the CPU: ranking metrics of a short fine-tune agree this closely
TOLERANCE = {"precision@10": 0.01, "ndcg@10": 0.015, "ild@10": 0.01, "ctr_auc": 0.01}


def _spec(device: str, amp: str):
    return tiny_spec(
        **{
            "train.device": device,
            "train.amp": amp,
            "train.max_steps": 30,
            "data.synthetic": {"n_users": 400, "n_items": 200, "interactions_per_user": 30},
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
