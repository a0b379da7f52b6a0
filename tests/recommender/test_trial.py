"""The default trial on a tiny random BERT and synthetic data with planted structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from moo_search import DataError, SpecError, TrialFailed, run_trial
from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.registries import ADAPTERS

from ..helpers import run_kept, tiny_spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    spec = tiny_spec(**{"eval.cold_user_max": 20})  # synthetic users have 20 train items
    art = tmp_path_factory.mktemp("art")
    return spec, run_kept(spec, art)


def test_training_lowers_loss_and_beats_mostpop(trained):
    spec, result = trained
    loss = result.history["loss"]
    assert np.mean(loss[-5:]) < np.mean(loss[:5]) - 0.1
    d = prepare_data(spec)
    base = evaluate_baselines(BaselineContext.of(spec, d), names=("MostPop",))
    assert result.value("precision@10") > 1.5 * base["MostPop"]["val"]["precision@10"]
    assert 0.5 < result.metrics["val"]["ctr_auc"] <= 1.0


def test_result_has_every_metric_on_val_and_test_and_the_cost(trained):
    _, result = trained
    for part in ("val", "test"):
        m = result.metrics[part]
        for name in (
            "precision@10",
            "recall@10",
            "ndcg@10",
            "hit@10",
            "mrr@10",
            "ild@10",
            "novelty@10",
            "coverage@10",
            "tail_share@10",
            "gini@10",
            "ctr_auc",
            "ctr_logloss",
            "cold/precision@10",
            "tail/recall@10",
        ):
            assert name in m and np.isfinite(m[name]), name
    assert result.cost["trainable_params"] > 0 and result.cost["train_tokens"] > 0
    assert result.value("cost/seconds") > 0


def test_adapter_really_trains_and_loads_with_plain_peft(trained):
    from peft import PeftModel

    from moo_search.recommender.model.encoder import load_encoder

    spec, result = trained
    model = result.model
    bs = [p for n, p in model.encoder.named_parameters() if "lora_B" in n]
    assert bs and all(float(b.detach().abs().sum()) > 0 for b in bs)
    base, _, _ = load_encoder(spec.model)  # same seed -> same random base weights
    loaded = PeftModel.from_pretrained(base, f"{result.artifact_dir}/adapter")
    a = dict(loaded.named_parameters())
    for n, p in model.encoder.named_parameters():
        if "lora_B" in n:
            assert torch.allclose(a[n], p.detach())
    files = {p.name for p in __import__("pathlib").Path(result.artifact_dir).iterdir()}
    assert {
        "adapter",
        "heads.safetensors",
        "metrics.json",
        "loss_curve.json",
        "config.yaml",
        "lists.npz",
    } <= files
    saved = json.loads(
        (__import__("pathlib").Path(result.artifact_dir) / "metrics.json").read_text()
    )
    assert saved["metrics"]["val"]["precision@10"] == result.value("precision@10")


def test_seeded_trial_is_deterministic_on_cpu():
    a = run_trial(tiny_spec(**{"train.max_steps": 10}))
    b = run_trial(tiny_spec(**{"train.max_steps": 10}))
    assert a.metrics == b.metrics


def test_novelty_weight_raises_novelty():
    # the learned (mf) backbone: the loss reaches every score; with a closed-form backbone only
    # the text tower moves, and the re-rankers carry the novelty trade-off
    base = run_trial(tiny_spec(**{"fusion.cf": "mf", "fusion.cf_params": {"dim": 32}}))
    novel = run_trial(
        tiny_spec(
            **{
                "fusion.cf": "mf",
                "fusion.cf_params": {"dim": 32},
                "loss.weights": {"ranking": 1.0, "ctr": 0.2, "novelty": 3.0},
            }
        )
    )
    assert novel.value("novelty@10") > base.value("novelty@10") + 0.05


def test_popularity_penalty_raises_novelty_and_lower_mmr_lambda_raises_ild(trained):
    spec, base = trained
    pen = run_trial(spec.with_params({"rerank.pop_penalty": 0.5}))
    assert pen.value("novelty@10") > base.value("novelty@10") + 0.05
    mmr = run_trial(spec.with_params({"rerank.mmr_lambda": 0.3}))
    assert mmr.value("ild@10") > base.value("ild@10") + 0.02


# what each adapter type adds to the encoder: parameter names that only it trains
ADAPTER_PARAMS = {
    "lora": ("lora_A", "lora_B"),
    "dora": ("lora_magnitude_vector",),
    "ia3": ("ia3_l",),
}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_every_adapter_type_trains_its_own_weights(adapter):
    r = run_kept(tiny_spec(**{"adapter.type": adapter, "train.max_steps": 5}))
    assert np.isfinite(r.value("precision@10"))
    trained = [n for n, p in r.model.encoder.named_parameters() if p.requires_grad]
    if adapter == "none":
        assert trained == []  # the encoder is frozen; only ID embeddings and heads train
        return
    for marker in ADAPTER_PARAMS[adapter]:
        assert any(marker in n for n in trained), (adapter, marker, trained[:4])
    others = {m for a, ms in ADAPTER_PARAMS.items() if a != adapter for m in ms}
    others -= set(ADAPTER_PARAMS[adapter])
    if adapter != "dora":  # DoRA is LoRA plus a magnitude vector
        assert not any(m in n for n in trained for m in others), trained


def test_unknown_target_module_fails_before_training(monkeypatch):
    import moo_search.recommender.train.loop as loop

    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SpecError, match=r"adapter.target_modules: target module 'qury'"):
        run_trial(tiny_spec(**{"adapter.target_modules": ["qury"]}))
    with pytest.raises(SpecError, match=r"adapter.layers: layers \[7\] do not exist"):
        run_trial(tiny_spec(**{"adapter.layers": [7]}))


def test_missing_model_path_fails_before_training():
    spec = tiny_spec(**{"model.tiny": None, "model.name_or_path": "/nonexistent/model"})
    with pytest.raises(
        SpecError, match="model.name_or_path: model path '/nonexistent/model' does not exist"
    ):
        run_trial(spec)


def test_bad_trial_configs_fail_at_load():
    with pytest.raises(SpecError, match="adapter.r"):
        tiny_spec(**{"adapter.r": 0})
    with pytest.raises(SpecError, match="train.lr"):
        tiny_spec(**{"train.lr": 0.0})
    with pytest.raises(SpecError, match="model.dropout"):
        tiny_spec(**{"model.dropout": 1.5})
    with pytest.raises(SpecError, match="model.attention"):
        tiny_spec(**{"model.attention": "flash"})


def _encode_twice(spec, *, train: bool):
    from moo_search.recommender.model.encoder import load_encoder

    encoder, tokenizer, _ = load_encoder(spec.model)
    encoder.train(train)
    batch = tokenizer(["a b c d e f", "g h"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.manual_seed(0)
        a = encoder(**batch).last_hidden_state
        b = encoder(**batch).last_hidden_state
    return encoder, a, b


def test_model_dropout_zero_turns_every_encoder_dropout_off():
    # the checkpoint's dropout draws a new mask each pass in train mode; 0 draws none
    enc, a, b = _encode_twice(tiny_spec(), train=True)
    assert {m.p for m in enc.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    assert not torch.allclose(a, b)
    enc, a, b = _encode_twice(tiny_spec(**{"model.dropout": 0.0}), train=True)
    assert {m.p for m in enc.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    _, evaluated, _ = _encode_twice(tiny_spec(), train=False)
    assert torch.equal(a, b) and torch.allclose(a, evaluated, atol=1e-6)


def test_attention_kernels_compute_the_same_encoder():
    from moo_search.recommender.model.encoder import attention_kernel

    auto = tiny_spec()
    expected = "sdpa" if torch.cuda.is_available() else "eager"
    assert attention_kernel(auto.model) == expected
    outs = {}
    for kernel in ("eager", "sdpa"):
        enc, out, _ = _encode_twice(tiny_spec(**{"model.attention": kernel}), train=False)
        assert enc.config._attn_implementation == kernel
        outs[kernel] = out
    assert torch.allclose(outs["eager"], outs["sdpa"], atol=1e-5)


def test_an_attention_kernel_the_model_lacks_is_a_spec_error_only_when_named(monkeypatch):
    from transformers import PreTrainedModel

    from moo_search.recommender.model.encoder import load_encoder

    def refuse(self, kernel, **_):
        raise ValueError(f"{type(self).__name__} does not support {kernel}\nmore detail")

    monkeypatch.setattr(PreTrainedModel, "set_attn_implementation", refuse)
    # the tiny BERT is built with sdpa: eager, asked for by name, must then fail
    with pytest.raises(SpecError, match="model.attention") as e:
        load_encoder(tiny_spec(**{"model.attention": "eager"}).model)
    assert "does not support" in str(e.value) and "more detail" not in str(e.value)
    encoder, _, _ = load_encoder(tiny_spec().model)  # auto: keeps the model's own kernel
    assert encoder.config._attn_implementation == "sdpa"


def test_nan_loss_stops_the_trial_with_a_reason(monkeypatch):
    import moo_search.recommender.train.losses as losses

    # NaN at the first step, before any update: the term is named, not the learning rate
    monkeypatch.setattr(losses, "ctr_loss", lambda logit, click: logit.sum() * float("nan"))
    with pytest.raises(
        TrialFailed, match=r"loss term\(s\) \['conversion'\] gave nan at the first step"
    ):
        run_trial(tiny_spec(**{"train.max_steps": 3}))
    # NaN after updates have run: the learning rate is the likely cause, and the term is named
    calls = {"n": 0}

    def later_nan(logit, click):
        calls["n"] += 1
        return logit.sum() * (float("nan") if calls["n"] > 2 else 0.0)

    monkeypatch.setattr(losses, "ctr_loss", later_nan)
    with pytest.raises(
        TrialFailed,
        match=r"loss became nan at step 2 \(term\(s\) \['conversion'\]\); lower train.lr",
    ):
        run_trial(tiny_spec(**{"train.max_steps": 5}))


def test_early_stopping_restores_best_and_records_evals():
    r = run_trial(tiny_spec(**{"train.max_steps": 40, "train.eval_every": 10, "train.patience": 1}))
    evals = r.history["evals"]
    assert len(evals) >= 2 and all("ndcg@10" in e for e in evals)
    best = max(e["ndcg@10"] for e in evals)
    # the returned model is the best one seen: its validation ndcg is the best evaluation's,
    # and best_step names an evaluation that reached it
    assert r.metrics["val"]["ndcg@10"] == pytest.approx(best)
    assert r.history["best_step"] in [e["step"] for e in evals if e["ndcg@10"] == best]


def test_a_split_with_no_relevant_item_fails_the_trial_with_a_message():
    spec = tiny_spec(
        **{"data.params": {"n_users": 30, "n_items": 20}, "data.relevance_threshold": 6}
    )
    with pytest.raises(DataError, match=r"data: the val split has no user with a relevant item"):
        run_trial(spec)


def test_a_real_trial_reports_its_rungs_on_a_fixed_user_sample(tmp_path):
    from moo_search.recommender.trial import run_trial

    seen: list[tuple[int, dict]] = []
    spec = tiny_spec(**{"train.max_steps": 12, "driver.early_stopping": {"rungs": [0.25, 0.5]}})
    run_trial(spec, on_rung=lambda step, m, cost: seen.append((step, m)))
    assert [s for s, _ in seen] == [3, 6]
    assert all("precision@10" in m["val"] and "ild@10" in m["val"] for _, m in seen)
