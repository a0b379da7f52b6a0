"""MODEL_CARD.md: what the model is, how it was chosen, its metrics, how to load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moo_search.export._select import Selection
from moo_search.recommender.spec import RecommenderSpec

__all__ = ["write_model_card"]


def write_model_card(
    out: Path,
    spec: RecommenderSpec,
    manifest: dict[str, Any],
    recorded: dict[str, Any],
    sel: Selection,
    objectives: list[dict[str, Any]],
) -> None:
    rows = _metric_rows(recorded["metrics"], objectives)
    card = f"""# {spec.name}

A language-model recommender: {manifest["base_model"]["id"]} with {_adapter(spec)},
the semantic score fused with the {spec.fusion.cf} collaborative backbone (alpha={spec.fusion.alpha:.3f}) and a CTR head;
re-ranking with MMR lambda={spec.rerank.mmr_lambda:.3f} and popularity penalty beta={spec.rerank.pop_penalty:.3f}.

## How it was chosen

Artifacts: {"checked against the SHA-256 recorded by the trial" if manifest["trial_artifacts"]["status"] == "verified" else "unverified (the trial predates artifact hashes)"}.

Study `{manifest["study"]["name"]}`, trial {manifest["study"]["trial"]}, selected by
`{sel.rule}`{f" among front trials with {' and '.join(sel.where)}" if sel.where else ""} from a Pareto front of
{len(sel.front)} trials over {", ".join(f"{o['metric']} ({o['direction']})" for o in objectives)}.

## Metrics

Data: {manifest["data"]["dataset"]} ({manifest["data"]["split"]["method"]} split, relevance: rating >= {manifest["data"]["relevance_threshold"]:g}); item text: {", ".join(manifest["data"].get("item_text", ["title", "genres"]))}.

| metric | validation | test |
|---|---|---|
{rows}

## Load it

```python
from moo_search import load_exported

rec = load_exported("{out.name}")                 # verifies manifest.json first
rec.recommend("196", k=10)                    # a known user id
rec.recommend({{"attributes": {{"age": 30}}, "history": ["1", "50"]}}, k=10)  # a new user
```

The adapter alone loads with plain PEFT{_base_note(manifest)}:

```python
{_plain_peft(manifest, out.name)}
```

Re-run the training: `moo-search trial {out.name}/config.yaml`; check reproduction:
`moo-search export ... --verify`.

Versions: {", ".join(f"{k} {v}" for k, v in manifest["versions"].items())}.
"""
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")


def _base_note(manifest: dict[str, Any]) -> str:
    base = manifest["base_model"]
    q = base.get("quantization")
    parts = (
        [f"the {base['family']} family, {base.get('pooling', 'mean')} pooling"]
        if base.get("family")
        else []
    )
    if q:
        parts.append(f"trained over a {q['bits']}-bit base (QLoRA): load the base as below")
    if base.get("trust_remote_code"):
        parts.append("the base runs its own code (trust_remote_code)")
    return f" ({'; '.join(parts)})" if parts else ""


def _plain_peft(manifest: dict[str, Any], name: str) -> str:
    """The lines that load the adapter onto its base with plain transformers and PEFT."""
    base = manifest["base_model"]
    cls = base.get("model_class", "AutoModel")
    q = base.get("quantization")
    args = [f'"{base["id"]}"']
    lines = ["from peft import PeftModel", f"from transformers import {cls}"]
    if q:
        lines[1] += ", BitsAndBytesConfig"
        quant = (
            "BitsAndBytesConfig(load_in_8bit=True)"
            if q["bits"] == 8
            else f'BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="{q["quant_type"]}", '
            f"bnb_4bit_use_double_quant={q['double_quant']}, "
            f'bnb_4bit_compute_dtype="{q["compute_dtype"]}")'
        )
        args.append(f"quantization_config={quant}")
    if base.get("trust_remote_code"):
        args.append("trust_remote_code=True")
    lines.append(
        f'model = PeftModel.from_pretrained({cls}.from_pretrained({", ".join(args)}), "{name}/adapter")'
    )
    return "\n".join(lines)


def _adapter(spec: RecommenderSpec) -> str:
    """The adapter and the knobs that act in it (a rank only where there is one)."""
    a = spec.adapter
    if a.type == "none":
        return "no adapter (a frozen encoder)"
    knobs = [f"r={a.r}", f"alpha={a.alpha:g}"] if a.type in ("lora", "dora") else []
    knobs += [f"{k}={v}" for k, v in sorted(a.params.items())]
    targets = a.target_modules
    named = f"the model family's {targets!r} set" if isinstance(targets, str) else None
    knobs.append(f"targets {named or ', '.join(targets)}")
    if a.layers:
        knobs.append(f"layers {a.layers}")
    return f"a {a.type.upper()} adapter\n({', '.join(knobs)})"


def _metric_rows(m: dict[str, Any], objectives: list[dict[str, Any]]) -> str:
    """The card's metric table rows: the objectives, then the usual metrics."""
    names = [o["metric"] for o in objectives] or ["precision@10", "ndcg@10", "ild@10", "novelty@10"]
    extra = [
        x
        for x in ("precision@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10", "ctr_auc")
        if x not in names
    ]
    return "\n".join(
        f"| {n} | {m['val'].get(n, float('nan')):.4f} | {m['test'].get(n, float('nan')):.4f} |"
        for n in names + extra
    )
