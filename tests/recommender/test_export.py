"""Export bundles: round trip, tamper detection, plain-PEFT loading, selection rules, --verify."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optuna
import pytest

from moo_search import ExportError, export_trial, load_exported
from moo_search.cli import main
from moo_search.drivers import run_study
from moo_search.recommender.export import verify_export

from ..helpers import tiny_spec

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    spec = tiny_spec(
        **{
            "train.max_steps": 15,
            "out_dir": str(d),
            "storage": f"sqlite:///{d}/study.db",
            "search_space": {
                "fusion.alpha": {"float": [0.2, 0.8]},
                "rerank.mmr_lambda": {"float": [0.4, 1.0]},
            },
            "objectives": [
                {"metric": "precision@10", "direction": "maximize"},
                {"metric": "ild@10", "direction": "maximize"},
            ],
            "budget": {"n_trials": 5},
            "fusion.sweep": True,  # fine-tunes also served at other alphas
        }
    )
    run_study(spec)
    return d


def _trial_lists(study_dir, number):
    z = np.load(study_dir / "artifacts" / f"trial_{number:05d}" / "lists.npz")
    return z["test_users"], z["test_lists"]


def test_round_trip_reproduces_the_trials_top10_lists(study_dir, tmp_path):
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir}/study.db")
    fine_tunes = [t for t in study.trials if "moo:derived_from" not in t.user_attrs]
    mmr = [t.number for t in fine_tunes if t.params["rerank.mmr_lambda"] < 1.0]
    for number in [0, mmr[0]]:  # the base config (pure relevance) and an MMR re-ranked trial
        out = export_trial(study_dir, out=tmp_path / f"t{number}", trial=number)
        rec = load_exported(out)
        users, lists = _trial_lists(study_dir, number)
        for u, expected in zip(users, lists):
            assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in expected]


def test_rerank_variants_are_trials_that_reuse_their_fine_tune(study_dir, tmp_path):
    """Each fine-tune is also recorded at the re-ranking grid: COMPLETE trials linked to it,
    outside the budget, with its adapter; exported, they re-rank exactly as recorded."""
    from moo_search.recommender.reference import rerank_grid
    from moo_search.spec import spec_from_dict

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir}/study.db")
    fine_tunes = [t for t in study.trials if "moo:derived_from" not in t.user_attrs]
    variants = [
        t
        for t in study.trials
        if "moo:derived_from" in t.user_attrs and "rerank.mmr_lambda" in t.user_attrs["moo:knobs"]
    ]
    assert len(fine_tunes) == 5  # the budget counts fine-tunes only
    spec = spec_from_dict(study.user_attrs["moo:spec"])
    assert len(variants) == 5 * len(rerank_grid(spec))
    v = next(t for t in variants if t.params["rerank.mmr_lambda"] < 0.5)
    parent = study.trials[v.user_attrs["moo:derived_from"]]
    assert v.user_attrs["moo:artifact_dir"] == parent.user_attrs["moo:artifact_dir"]
    assert v.params["fusion.alpha"] == parent.params["fusion.alpha"]
    assert v.user_attrs["moo:config"]["rerank"]["mmr_lambda"] == v.params["rerank.mmr_lambda"]
    assert v.values != parent.values  # another list, another point
    # the variant's lists differ from its parent's and are reproducible from the bundle
    a = load_exported(export_trial(study_dir, out=tmp_path / "variant", trial=v.number))
    b = load_exported(export_trial(study_dir, out=tmp_path / "parent", trial=parent.number))
    users = a.user_ids[:40]
    assert [a.recommend(u) for u in users] != [b.recommend(u) for u in users]
    assert a.spec.rerank.mmr_lambda == pytest.approx(v.params["rerank.mmr_lambda"])


def test_a_fine_tune_served_at_another_alpha_is_a_variant_that_exports_as_served(
    study_dir, tmp_path
):
    """Each fine-tune is also served at other points of the searched alpha range (no
    retraining): the variant's metrics and exported lists are those of a fine-tune configured
    to serve at that alpha (``fusion.serve_alpha``), trained the same way."""
    from moo_search import run_trial
    from moo_search.spec import spec_from_dict

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{study_dir}/study.db")
    served = [t for t in study.trials if "fusion.serve_alpha" in t.user_attrs.get("moo:knobs", {})]
    parent = study.trials[0]
    mine = [t for t in served if t.user_attrs["moo:derived_from"] == parent.number]
    own = parent.params["fusion.alpha"]
    expected = [a for a in np.linspace(0.2, 0.8, 4) if not np.isclose(a, own)]
    assert sorted(t.user_attrs["moo:knobs"]["fusion.serve_alpha"] for t in mine) == pytest.approx(
        expected
    )
    v = max(mine, key=lambda t: t.user_attrs["moo:knobs"]["fusion.serve_alpha"])
    assert v.params == parent.params  # what was trained; the served weight is its knob
    assert v.user_attrs["moo:config"]["fusion"]["alpha"] == own
    assert v.values != parent.values
    # the same fine-tune configured to serve there: the same metrics and lists
    config = spec_from_dict(v.user_attrs["moo:config"])
    direct = run_trial(config, artifact_dir=tmp_path / "direct")
    assert direct.metrics["test"]["precision@10"] == pytest.approx(
        v.user_attrs["moo:metrics"]["test"]["precision@10"]
    )
    z = np.load(tmp_path / "direct" / "lists.npz")
    rec = load_exported(export_trial(study_dir, out=tmp_path / "v", trial=v.number))
    for u, top in list(zip(z["test_users"], z["test_lists"]))[:60]:
        assert rec.recommend(rec.user_ids[u], k=10) == [rec.item_ids[i] for i in top]


def test_bundle_contents_and_new_user_api(study_dir, tmp_path):
    out = export_trial(study_dir, out=tmp_path / "knee", select="knee")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "config.yaml",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "heads.safetensors",
        "metrics.json",
        "manifest.json",
        "MODEL_CARD.md",
        "catalog.json",
        "seen.npz",
    } <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["versions"]) == {"moo_search", "torch", "transformers", "peft", "optuna"}
    assert (
        len(manifest["base_model"]["weights_sha256"]) == 64
        and len(manifest["data"]["fingerprint"]) == 64
    )
    assert set(manifest["files"]) == names - {"manifest.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["rule"] == "knee" and metrics["front"]
    assert {"val", "test"} <= set(metrics["metrics"])
    rec = load_exported(out)
    new = rec.recommend(
        {"attributes": {"age": 30}, "history": [rec.item_ids[0], rec.item_ids[1]]}, k=5
    )
    assert len(new) == 5 and rec.item_ids[0] not in new
    known = rec.user_ids[3]
    s = rec.score(known, rec.item_ids[:4])
    assert s.shape == (4,) and np.isfinite(s).all()
    assert 0.0 < rec.ctr(known, rec.item_ids[2]) < 1.0
    with pytest.raises(ExportError, match="unknown user id"):
        rec.recommend("no-such-user")


@pytest.mark.parametrize(
    "victim",
    [
        "config.yaml",
        "adapter/adapter_model.safetensors",
        "heads.safetensors",
        "metrics.json",
        "catalog.json",
        "seen.npz",
        "MODEL_CARD.md",
    ],
)
def test_one_changed_byte_is_refused_naming_the_file(study_dir, tmp_path, victim):
    out = export_trial(study_dir, out=tmp_path / "b", trial=1)
    p = out / victim
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=rf"{victim}: SHA-256 differs"):
        load_exported(out)


@pytest.mark.parametrize(
    ("victim", "content"),
    [
        ("config.yaml", b"adapter: [unclosed\n"),
        ("config.yaml", b"adapter: {type: lorax}\n"),
        ("catalog.json", b"{not json"),
        ("heads.safetensors", b"not safetensors"),
        ("seen.npz", b"PK\x03\x04 not a zip"),
    ],
)
def test_a_resealed_unreadable_file_is_an_export_error_naming_it(
    study_dir, tmp_path, victim, content
):
    """Even with a manifest that matches (re-sealed by hand), a file that does not parse is an
    ExportError naming it, never a raw YAML / JSON / zip error."""
    from moo_search.export._files import MANIFEST, seal

    out = export_trial(study_dir, out=tmp_path / "r", trial=1)
    (out / victim).write_bytes(content)
    seal(out, json.loads((out / MANIFEST).read_text()))
    with pytest.raises(ExportError, match=rf"{victim}: "):
        load_exported(out)


def test_missing_and_extra_files_are_refused(study_dir, tmp_path):
    out = export_trial(study_dir, out=tmp_path / "m", trial=1)
    (out / "heads.safetensors").unlink()
    with pytest.raises(ExportError, match="heads.safetensors: listed in the manifest but missing"):
        load_exported(out)
    out2 = export_trial(study_dir, out=tmp_path / "x", trial=1)
    (out2 / "evil.py").write_text("print('hi')")
    with pytest.raises(ExportError, match="evil.py"):
        load_exported(out2)


@pytest.mark.parametrize("entry", ["../../outside.txt", "/etc/hostname", "adapter/../x", ""])
def test_a_manifest_entry_outside_the_bundle_is_refused(study_dir, tmp_path, entry):
    """No entry may make verification read a host file: relative, normalised and inside."""
    from moo_search.export._files import MANIFEST

    out = export_trial(study_dir, out=tmp_path / "o", trial=1)
    (tmp_path / "outside.txt").write_text("host file")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"][entry] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="not a relative path inside the bundle"):
        load_exported(out)


@pytest.mark.parametrize("victim", ["heads.safetensors", "seen.npz"])
def test_a_resealed_file_of_the_wrong_shape_is_an_export_error_naming_it(
    study_dir, tmp_path, victim
):
    """Parses, matches a re-sealed manifest, but does not fit the rest of the bundle."""
    from safetensors.torch import load_file, save_file

    from moo_search.export._files import MANIFEST, seal

    out = export_trial(study_dir, out=tmp_path / "w", trial=1)
    p = out / victim
    if victim == "heads.safetensors":
        heads = load_file(str(p))
        heads["item_like"] = heads["item_like"][:-3].clone()
        save_file(heads, str(p))
    else:
        z = dict(np.load(p))
        z["shape"] = np.array([3, 3])
        np.savez(p, **z)
    seal(out, json.loads((out / MANIFEST).read_text()))
    with pytest.raises(ExportError, match=rf"{victim}: "):
        load_exported(out)


def test_symlinks_and_a_malformed_manifest_are_refused(study_dir, tmp_path):
    from moo_search.export._files import MANIFEST

    out = export_trial(study_dir, out=tmp_path / "s", trial=1)
    real = tmp_path / "real_adapter"
    (out / "adapter").rename(real)
    (real / "unlisted.bin").write_bytes(b"x")
    (out / "adapter").symlink_to(real, target_is_directory=True)
    with pytest.raises(ExportError, match="symbolic link"):
        load_exported(out)
    out2 = export_trial(study_dir, out=tmp_path / "l", trial=1)
    manifest = json.loads((out2 / MANIFEST).read_text())
    manifest["files"] = sorted(manifest["files"])
    (out2 / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"manifest.json: 'files' must map"):
        load_exported(out2)


def test_adapter_loads_with_plain_transformers_and_peft(study_dir, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    out = export_trial(study_dir, out=tmp_path / "p", trial=2)
    tiny = json.loads(
        json.dumps(__import__("yaml").safe_load((out / "config.yaml").read_text())["model"])
    )
    t = tiny["tiny"]
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=t["hidden_size"],
        num_hidden_layers=t["num_hidden_layers"],
        num_attention_heads=t["num_attention_heads"],
        intermediate_size=t["intermediate_size"],
        max_position_embeddings=max(tiny["max_user_length"], tiny["max_item_length"]) + 2,
    )
    torch.manual_seed(t["seed"])
    model = PeftModel.from_pretrained(BertModel(cfg), str(out / "adapter"))
    saved = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    params = dict(model.named_parameters())
    loaded = [k for k in saved if any(k.replace(".weight", "") in n for n in params)]
    assert loaded and len(loaded) == len(saved)
    for n, p in params.items():
        if "lora_B" in n:
            assert p.abs().sum() > 0
    out_t = model(input_ids=torch.tensor([[101, 2000, 102]])).last_hidden_state
    assert out_t.shape == (1, 3, t["hidden_size"])


def test_selection_rules_and_where(study_dir, tmp_path):
    out = export_trial(study_dir, out=tmp_path / "best", select="best:ild@10")
    m = json.loads((out / "metrics.json").read_text())
    front = m["front"]
    assert m["metrics"]["val"]["ild@10"] == pytest.approx(max(f["ild@10"] for f in front))
    lo = min(f["precision@10"] for f in front)
    out = export_trial(
        study_dir, out=tmp_path / "w", select="compromise", where=[f"precision@10>={lo}"]
    )
    assert json.loads((out / "metrics.json").read_text())["selection"]["where"] == [
        f"precision@10>={lo}"
    ]
    with pytest.raises(
        ExportError,
        match=r"no front trial satisfies precision@10>=2.*front ranges: precision@10 in \[",
    ):
        export_trial(study_dir, out=tmp_path / "none", select="knee", where=["precision@10>=2"])
    with pytest.raises(
        ExportError, match="--select .nope.: expected knee, compromise or best:METRIC"
    ):
        export_trial(study_dir, out=tmp_path / "n2", select="nope")
    with pytest.raises(ExportError, match="--trial 99: no such trial"):
        export_trial(study_dir, out=tmp_path / "n3", trial=99)


def test_refuses_non_empty_out_unless_force(study_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(study_dir), "--trial", "0", "--out", str(out)]) == 2
    assert "not empty; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces a previous bundle only, never the user's own files
    assert main(["export", str(study_dir), "--trial", "0", "--out", str(out), "--force"]) == 2
    assert "not an export bundle" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert main(["export", str(study_dir), "--trial", "0", "--out", str(out)]) == 0
    assert main(["export", str(study_dir), "--trial", "1", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "manifest.json").read_text())["study"]["trial"] == 1
    assert {p.name for p in tmp_path.iterdir()} == {"o"}  # nothing left beside --out


def test_verify_reproduces_the_recorded_metrics(study_dir, tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["export", str(study_dir), "--select", "knee", "--out", str(out), "--verify"]) == 0
    assert "reproduced" in capsys.readouterr().out
    v = json.loads((out / "metrics.json").read_text())["verification"]
    assert v["reproduced"] and v["max_abs_diff"] <= v["tolerance_abs"] and v["metrics_checked"] > 20
    load_exported(out)  # still sealed after metrics.json was updated
    shutil.rmtree(out)


def test_exported_config_reruns_standalone(study_dir, tmp_path):
    out = export_trial(study_dir, out=tmp_path / "c", trial=0)
    res = verify_export(out)
    assert res["reproduced"]


def test_a_users_scores_do_not_depend_on_the_batch_it_is_scored_in():
    """The trial scores every user in one batch, the exported model one user at a time: the
    semantic scores must be the same bits either way, or near-tied items swap places in the
    exported lists (float32 GEMM and GEMV round differently; seen on an AMX machine)."""
    import torch

    from moo_search.recommender.inference import CatalogScorer

    gen = torch.Generator().manual_seed(0)
    items = torch.nn.functional.normalize(torch.randn(1700, 384, generator=gen), dim=-1)
    users = torch.nn.functional.normalize(torch.randn(900, 384, generator=gen), dim=-1)
    scorer = CatalogScorer(model=None, item_emb=items, user_emb=users, device="cpu")
    batch = scorer.semantic(users)
    assert batch.dtype == torch.float32
    alone = torch.cat([scorer.semantic(users[i : i + 1]) for i in range(len(users))])
    assert torch.equal(batch, alone)
