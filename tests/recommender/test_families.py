"""Any language model as the tower: the contract every registered model family keeps (the
built-ins and a user's plugin family alike: a new registration is picked up with no test
edit), and the parts around it: checkpoints found by their model_type, pooling on either
padding side, GPT-2's Conv1D, adapters that load with plain PEFT, QLoRA refused on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from moo_search import SpecError, run_trial
from moo_search.recommender.baselines.ranking import BaselineContext, evaluate_baselines
from moo_search.recommender.model.encoder import _packaged_path, load_encoder
from moo_search.recommender.model.layer_cache import frozen_prefix_length, layer_stack
from moo_search.recommender.model.pooling import pool
from moo_search.recommender.model.tokens import TokenTable, text_table
from moo_search.recommender.prepare import prepare_data
from moo_search.recommender.registries import FAMILIES

from .. import family_plugin  # noqa: F401 - a user's family: the suite runs it too
from ..helpers import TINY, run_kept, tiny_spec

REPO = Path(__file__).resolve().parents[2]
FAMILY_NAMES = FAMILIES.names()


def _spec(family: str, **kw):
    return tiny_spec(**{"model.tiny.family": family, **kw})


def _batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    table = TokenTable([tokenizer(t)["input_ids"] for t in texts], int(tokenizer.pad_token_id))
    return table.batch(np.arange(len(texts)))


TEXTS = ["Toy Story (1995) · Animation", "a much longer text about heat, a crime film of 1995"]


# --------------------------------------------------------------------------- the contract


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def text_only(request, tmp_path_factory):
    """A text-only fine-tune (fusion.alpha = 1: no backbone to lean on) of each family."""
    family = request.param
    spec = _spec(family, **{"fusion.alpha": 1.0, "train.max_steps": 60, "train.lr": 1e-3})
    art = tmp_path_factory.mktemp(f"art-{family}")
    result = run_kept(spec, art)
    result.art = art
    return family, spec, result


def test_every_family_learns_from_text_and_beats_popularity(text_only):
    family, spec, result = text_only
    loss = result.history["loss"]
    assert np.mean(loss[-5:]) < np.mean(loss[:5]), (family, loss[:5], loss[-5:])
    base = evaluate_baselines(BaselineContext.of(spec, prepare_data(spec)), names=("MostPop",))
    assert result.value("precision@10") > 1.3 * base["MostPop"]["val"]["precision@10"], family


def test_every_familys_adapter_loads_with_plain_peft_to_the_same_states(text_only):
    from peft import PeftModel

    from moo_search.recommender.model.adapters import quiet_peft

    family, spec, result = text_only
    base, tokenizer, _ = load_encoder(spec.model)  # the family's base, no adapter
    with quiet_peft():
        plain = PeftModel.from_pretrained(base, str(result.art / "adapter")).eval()
    trained = result.model.encoder.eval()
    ids, mask = _batch(tokenizer, TEXTS)
    with torch.no_grad():
        got = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        want = trained(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-5), family


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_family_has_working_target_sets(family):
    from moo_search.recommender.model.adapters import adapted_targets, apply_adapter

    spec = _spec(family)
    for targets in ("default", "attention", "mlp", "all-linear"):
        model, _, _ = load_encoder(spec.model)
        cfg = spec.adapter.model_copy(update={"target_modules": targets})
        names, _ = adapted_targets(model, cfg)
        assert names, (family, targets)
        wrapped = apply_adapter(model, cfg)
        assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) > 0
    ia3 = spec.adapter.model_copy(update={"type": "ia3"})
    _, ff = adapted_targets(load_encoder(spec.model)[0], ia3)
    assert ff, family


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_familys_layer_stack_is_its_own_forward_or_says_why_not(family):
    spec = _spec(family, **{"model.tiny.num_hidden_layers": 3})
    model, tokenizer, _ = load_encoder(spec.model)
    entry = FAMILIES.get(family)
    stack = layer_stack(model)
    if stack is None:
        assert entry.cache_support(model.config.model_type), "a family without a stack says why"
        assert frozen_prefix_length(model) == 0
        return
    ids, mask = _batch(tokenizer, TEXTS)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state
        layers = stack.layers()
        h = stack.run(layers[:1], stack.embed(ids, mask), mask)  # bottom, then top
        got = stack.finish(stack.run(layers[1:], h, mask))
    real = mask.bool()
    assert torch.allclose(got[real], want[real], atol=1e-5), family


@pytest.mark.parametrize("family", [f for f in FAMILY_NAMES if FAMILIES.get(f).stack is not None])
def test_the_frozen_layer_cache_changes_no_metric_in_any_family(family, tmp_path, monkeypatch):
    from moo_search.recommender.model import layer_cache

    monkeypatch.setenv("MOO_SEARCH_CACHE", str(tmp_path))
    layer_cache._MEMORY.clear()
    kw = {"model.tiny.num_hidden_layers": 3, "adapter.layers": [2], "train.max_steps": 10}
    cached = run_kept(_spec(family, **kw, **{"train.layer_cache": True, "train.amp": "off"}))
    assert cached.model.prefix is not None and cached.model.prefix.n == 2
    uncached = run_trial(_spec(family, **kw, **{"train.layer_cache": False, "train.amp": "off"}))
    for part in ("val", "test"):
        for name, value in uncached.metrics[part].items():
            assert cached.metrics[part][name] == pytest.approx(value, abs=1e-3), (family, name)


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(tmp_path: Path, model_type: str, **dims) -> Path:
    """A tiny random checkpoint of ``model_type`` saved as a local model directory, with the
    packaged tokenizer: what a researcher's own model looks like to ``model.name_or_path``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_packaged_path()))
    base = {
        "vocab_size": tok.vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
        "pad_token_id": tok.pad_token_id,
    }
    if model_type == "t5":
        base = {
            "vocab_size": tok.vocab_size,
            "d_model": 32,
            "d_kv": 16,
            "d_ff": 64,
            "num_layers": 2,
            "num_heads": 2,
            "pad_token_id": tok.pad_token_id,
        }
    if model_type == "gpt2":
        base = {
            "vocab_size": tok.vocab_size,
            "n_embd": 32,
            "n_layer": 2,
            "n_head": 2,
            "n_positions": 128,
        }
    if model_type in ("qwen2", "mistral", "llama"):
        base["num_key_value_heads"] = 1
    config = AutoConfig.for_model(model_type, **{**base, **dims})
    torch.manual_seed(0)
    if model_type == "t5":  # saved as the full encoder-decoder, as T5 checkpoints are
        from transformers import T5Model

        model = T5Model(config)
    else:
        model = AutoModel.from_config(config)
    out = tmp_path / f"my-{model_type}"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


CHECKPOINTS = ["llama", "qwen2", "mistral", "gpt2", "t5", "modernbert", "mpnet"]


@pytest.mark.parametrize("model_type", CHECKPOINTS)
def test_a_researchers_checkpoint_is_found_by_its_model_type_and_trains(model_type, tmp_path):
    path = _save_checkpoint(tmp_path, model_type)
    spec = tiny_spec(**{"model.tiny": None, "model.name_or_path": str(path), "train.max_steps": 3})
    result = run_kept(spec)
    encoder = result.model.encoder.get_base_model()
    if model_type == "t5":  # the encoder alone: no decoder newly initialised beside it
        assert type(encoder).__name__ == "T5EncoderModel"
    assert np.isfinite(result.value("precision@10"))
    stack = layer_stack(encoder)
    if stack is not None:  # its layers run apart exactly as its own forward runs them
        ids, mask = _batch(result_tokenizer(spec), TEXTS)
        with torch.no_grad():
            want = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            got = stack.finish(stack.run(stack.layers(), stack.embed(ids, mask), mask))
        assert torch.allclose(got[mask.bool()], want[mask.bool()], atol=1e-5), model_type


def result_tokenizer(spec):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.model.name_or_path)


def test_an_unknown_model_type_names_the_field_and_the_families(tmp_path):
    path = _save_checkpoint(tmp_path, "bloom", n_layer=2, n_head=2)
    spec_path = tmp_path / "s.yaml"
    raw = {**TINY, "model": {**TINY["model"], "tiny": None, "name_or_path": str(path)}}
    spec_path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, "-m", "moo_search.cli", "trial", str(spec_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "model.name_or_path" in proc.stderr and "'bloom'" in proc.stderr
    for name in ("bert", "llama", "gpt2", "t5", "modernbert"):
        assert name in proc.stderr
    assert "FAMILIES.register" in proc.stderr


def test_qlora_on_a_cpu_is_refused_naming_the_field_before_any_weight_loads(tmp_path, monkeypatch):
    import transformers

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: QLoRA is allowed here (the gpu tier runs it)")
    path = _save_checkpoint(tmp_path, "llama")

    def never(*a, **k):
        raise AssertionError("weights were loaded before the check")

    monkeypatch.setattr(transformers.LlamaModel, "from_pretrained", never)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", never)
    spec = tiny_spec(
        **{"model.tiny": None, "model.name_or_path": str(path), "model.quantization": {"bits": 4}}
    )
    with pytest.raises(SpecError, match=r"model.quantization: 4-bit loading .* needs a CUDA"):
        run_trial(spec)


# --------------------------------------------------------------------------- the parts


def test_last_pooling_finds_the_last_real_token_on_either_padding_side():
    h = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(h, right, "last").ravel().tolist() == [1.0, 7.0]
    assert pool(h, left, "last").ravel().tolist() == [3.0, 7.0]
    assert pool(h, left, "cls").ravel().tolist() == [2.0, 4.0]
    # position-weighted mean (SGPT): weights 1, 2 over the two real tokens
    assert pool(h, right, "weighted_mean")[0].item() == pytest.approx((0 * 1 + 1 * 2) / 3)


def test_a_decoder_embeds_a_text_alike_padded_left_or_right():
    spec = _spec("llama")
    result = run_kept(
        spec.model_copy(update={"train": spec.train.model_copy(update={"max_steps": 2})})
    )
    model = result.model
    _, tokenizer, _ = load_encoder(spec.model)
    table = text_table(tokenizer, TEXTS, spec.model, "user", cached=False)
    idx = np.arange(len(TEXTS))
    model.eval()
    with torch.no_grad():
        model.left_padded = False
        right = model.encode_rows(table, idx, torch.device("cpu"))
        model.left_padded = True
        left = model.encode_rows(table, idx, torch.device("cpu"))
    model.left_padded = False
    assert torch.allclose(left, right, atol=1e-5)
    _, mask = table.batch(idx, left=True)
    assert mask[0, 0] == 0 and mask[0, -1] == 1  # the shorter text is padded on the left


def test_gpt2s_conv1d_projections_are_adapted():
    from peft.tuners.lora import LoraLayer

    result = run_kept(_spec("gpt2", **{"train.max_steps": 3}))
    wrapped = {n for n, m in result.model.encoder.named_modules() if isinstance(m, LoraLayer)}
    assert wrapped and all(n.endswith("c_attn") for n in wrapped)
    assert any(p.requires_grad for n, p in result.model.encoder.named_parameters() if "lora_" in n)


def test_prefixes_and_eos_pooling_shape_the_token_tables():
    _, tokenizer, _ = load_encoder(_spec("bert").model)
    plain = _spec("llama", **{"model.pooling": "last"}).model
    styled = _spec(
        "llama",
        **{
            "model.pooling": "eos",
            "model.user_prefix": "query: ",
            "model.item_prefix": "passage: ",
        },
    ).model
    a = text_table(tokenizer, ["heat"], plain, "item", cached=False).ids[0]
    b = text_table(tokenizer, ["heat"], styled, "item", cached=False).ids[0]
    c = text_table(tokenizer, ["heat"], styled, "user", cached=False).ids[0]
    prefix = tokenizer("passage:", add_special_tokens=False)["input_ids"]
    assert b[1 : 1 + len(prefix)] == prefix and b[1 + len(prefix) :] == a[1:]  # prefix, then text
    assert tokenizer.decode(b).startswith("[CLS] passage :") and tokenizer.decode(c).startswith(
        "[CLS] query :"
    )
    assert b[-1] == tokenizer.sep_token_id  # the EOS (BERT's tokenizer: [SEP]) ends the text
    long = text_table(tokenizer, ["word " * 200], styled, "item", cached=False).ids[0]
    assert len(long) == styled.max_item_length and long[-1] == tokenizer.sep_token_id


def test_gradient_checkpointing_trains_to_the_same_metrics():
    kw = {"train.max_steps": 6, "model.dropout": 0.0}
    plain = run_trial(_spec("llama", **kw))
    checkpointed = run_trial(_spec("llama", **kw, **{"train.gradient_checkpointing": True}))
    for name, value in plain.metrics["val"].items():
        assert checkpointed.metrics["val"][name] == pytest.approx(value, abs=1e-4), name


def test_list_shows_the_families_and_a_plugin_family_runs_with_two_workers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    listed = subprocess.run(
        [sys.executable, "-m", "moo_search.cli", "list", "families"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("bert", "modernbert", "llama", "gpt2", "t5"):
        assert name in listed.stdout
    spec = {
        **{k: v for k, v in TINY.items() if k != "model"},
        "name": "fam",
        "plugins": ["tests.family_plugin"],
        "model": {**TINY["model"], "tiny": {"family": "house-decoder", "hidden_size": 32}},
        "train": {**TINY["train"], "max_steps": 2},
        "search_space": {"train.lr": {"float": [1e-4, 1e-2], "log": True}},
        "objectives": [
            {"metric": "precision@10", "direction": "maximize"},
            {"metric": "novelty@10", "direction": "maximize"},
        ],
        "driver": {"population": 2},
        "budget": {"n_trials": 2},
        "out_dir": str(tmp_path / "study"),
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "moo_search.cli", "run", str(tmp_path / "s.yaml"), "--workers", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from moo_search import load_study
    from moo_search.study import is_derived

    study = load_study(tmp_path / "study")
    done = [t for t in study.trials if t.state.name == "COMPLETE" and not is_derived(t)]
    assert len(done) >= 2
    config = done[0].user_attrs["moo:config"]
    assert config["model"]["tiny"]["family"] == "house-decoder"
    card = json.dumps(done[0].user_attrs)
    assert "house-decoder" in card


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_a_decoder_or_t5_fine_tune_exports_loads_serves_and_reproduces(family, tmp_path):
    from moo_search import export_trial, load_exported
    from moo_search.drivers import run_study
    from moo_search.recommender.export import verify_export

    spec = _spec(
        family,
        **{
            "train.max_steps": 8,
            "out_dir": str(tmp_path / "study"),
            "storage": f"sqlite:///{tmp_path}/study/study.db",
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "novelty@10", "direction": "maximize"},
            ],
            "search_space": {"fusion.alpha": {"float": [0.3, 0.7]}},
            "driver": {"population": 2},
        },
    )
    run_study(spec, n_trials=1)
    out = export_trial(tmp_path / "study", out=tmp_path / "bundle", trial=0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["base_model"]["family"] == family
    assert manifest["base_model"]["pooling"] == FAMILIES.get(family).pooling
    card = (out / "MODEL_CARD.md").read_text()
    assert f"the {family} family" in card and FAMILIES.get(family).model_class in card
    rec = load_exported(out)
    assert len(rec.recommend(rec.user_ids[0], k=5)) == 5
    assert verify_export(out)["reproduced"]
    # served as an MLflow model: the lists of load_exported; a new user's history and a new
    # item are encoded through the family's pooling
    import mlflow
    import pandas as pd

    users = rec.user_ids[:4]
    served = mlflow.pyfunc.load_model(str(out)).predict(
        pd.DataFrame({"user": users, "k": [5] * len(users)})
    )
    assert [list(x) for x in served["items"]] == [rec.recommend(u, 5) for u in users]
    new_user = {"attributes": {}, "history": rec.item_ids[:2]}
    assert not set(rec.item_ids[:2]) & set(rec.recommend(new_user, k=5))
    emb = rec.embed_items([{"id": "new-1", "title": "A new film", "genres": ["Drama"]}])
    assert rec.rank(rec.user_ids[0], 3, new_items=emb, only_new=True)[0] == ["new-1"]
