"""Every model family at matched width and depth: seconds per training step and per 1,000
encoded texts, fp32 against bf16 autocast, the frozen-layer cache against the whole stack,
side by side in one process (modes interleaved, medians of repeats), so machine noise hits
every cell alike.

    python benchmarks/bench_families.py [--hidden 384 --layers 6 --batch 32 --repeats 5]

Each family's tiny random model is built from its own registered config at the same width,
depth, heads and feed-forward size (MiniLM's by default: 384 x 6), LoRA r=8 on the family's
default targets in the top two layers (so that the cache holds the four below). A training
step is a forward and backward pass of ``batch`` texts of 64 tokens through the text tower
(pooled by the family's pooling) and an AdamW step on the adapter; encoding is 1,000 texts
of 32 tokens without gradients in batches of 256. "cached" runs only the adapted top layers
over the frozen layers' stored output (what a trial does when ``train.layer_cache`` is on);
families whose cache steps aside print the reason instead. bf16 is CPU/GPU autocast over
fp32 weights (``train.amp: bf16``). Ratios are printed against each family's fp32 uncached
cell, and the machine's CPU flags are printed so that bf16 figures can be judged.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from moo_search.recommender.config import AdapterConfig
from moo_search.recommender.config._model import TinyModelConfig
from moo_search.recommender.model.adapters import apply_adapter
from moo_search.recommender.model.encoder import FAMILY_ATTR
from moo_search.recommender.model.layer_cache import layer_stack
from moo_search.recommender.model.pooling import pool
from moo_search.recommender.registries import FAMILIES

VOCAB = 30522


def _model(family: str, args: argparse.Namespace) -> Any:
    import transformers
    from transformers import AutoModel

    fam = FAMILIES.get(family)
    assert fam.tiny is not None
    t = TinyModelConfig(
        family=family,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
    )
    special = {"pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102}
    config = fam.tiny(t, VOCAB, 130, special)
    torch.manual_seed(0)
    if fam.model_class == "AutoModel":
        model = AutoModel.from_config(config)
    else:
        model = getattr(transformers, fam.model_class)(config)
    setattr(model, FAMILY_ATTR, family)
    with contextlib.suppress(ValueError, ImportError):
        model.set_attn_implementation(args.attention)  # (a trial's: eager on a CPU)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    top = list(range(args.layers - 2, args.layers))
    return apply_adapter(model, AdapterConfig(type="lora", r=8, alpha=16, dropout=0.0, layers=top))


def _autocast(bf16: bool) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _forward(model: Any, stack: Any, ids: torch.Tensor, mask: torch.Tensor, bottom: Any) -> Any:
    if bottom is None:
        return model(input_ids=ids, attention_mask=mask).last_hidden_state
    return stack.finish(stack.run(stack.layers()[-2:], bottom, mask))


def train_seconds(
    model: Any, how: str, cached: bool, bf16: bool, args: argparse.Namespace
) -> float:
    stack = layer_stack(model)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, VOCAB, (args.batch, 64), generator=gen)
    mask = torch.ones_like(ids)
    bottom = None
    if cached:
        with torch.no_grad(), _autocast(bf16):
            h = stack.embed(ids, mask)
            bottom = stack.run(stack.layers()[:-2], h, mask)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        with _autocast(bf16):
            out = pool(_forward(model, stack, ids, mask, bottom), mask, how)
            loss = out.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / args.steps


def encode_seconds(model: Any, how: str, cached: bool, bf16: bool) -> float:
    stack = layer_stack(model)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(1000, VOCAB, (1000, 32), generator=gen)
    mask = torch.ones_like(ids)
    model.eval()
    bottoms = None
    if cached:  # (stored once per study; not timed, as a trial reads it from the cache)
        with torch.no_grad(), _autocast(bf16):
            bottoms = [
                stack.run(
                    stack.layers()[:-2],
                    stack.embed(ids[i : i + 256], mask[i : i + 256]),
                    mask[i : i + 256],
                )
                for i in range(0, 1000, 256)
            ]
    t0 = time.perf_counter()
    with torch.no_grad(), _autocast(bf16):
        for j, i in enumerate(range(0, 1000, 256)):
            b = None if bottoms is None else bottoms[j]
            pool(
                _forward(model, stack, ids[i : i + 256], mask[i : i + 256], b),
                mask[i : i + 256],
                how,
            )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="training steps per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--attention", default="eager", help="eager (a trial's on a CPU) or sdpa")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU bf16 kernels: "
        f"{'amx_bf16' if 'amx_bf16' in flags else 'avx512_bf16' if 'avx512_bf16' in flags else 'none'}"
    )
    print(
        f"matched size: hidden {args.hidden}, {args.layers} layers, {args.heads} heads, "
        f"LoRA r=8 on the top 2 layers; {args.attention} attention; batch {args.batch} x 64 "
        f"tokens; after a warm-up round, medians of {args.repeats} interleaved repeats\n"
    )
    names = args.families or [n for n in FAMILIES.names() if FAMILIES.get(n).tiny is not None]
    models = {n: _model(n, args) for n in names}
    cells: dict[tuple[str, bool, bool], dict[str, list[float]]] = {}
    for rep in range(args.repeats + 1):  # interleaved: every cell sees the same noise
        for n, model in models.items():
            how = FAMILIES.get(n).pooling
            can_cache = layer_stack(model) is not None
            for bf16 in (False, True):
                for cached in (False, True) if can_cache else (False,):
                    c = cells.setdefault((n, bf16, cached), {"train": [], "encode": []})
                    step = train_seconds(model, how, cached, bf16, args)
                    enc = encode_seconds(model, how, cached, bf16)
                    if rep:  # the first round warms every kernel up and is not counted
                        c["train"].append(step)
                        c["encode"].append(enc)
    print(f"{'family':12s} {'mode':14s} {'s/step':>8s} {'x':>6s} {'s/1k texts':>11s} {'x':>6s}")
    for n, model in models.items():
        base = cells[(n, False, False)]
        b_train, b_enc = statistics.median(base["train"]), statistics.median(base["encode"])
        for bf16 in (False, True):
            for cached in (False, True):
                c = cells.get((n, bf16, cached))
                mode = f"{'bf16' if bf16 else 'fp32'} {'cached' if cached else 'whole'}"
                if c is None:
                    if bf16:
                        continue
                    why = FAMILIES.get(n).cache_support(model.get_base_model().config.model_type)
                    print(f"{n:12s} {'cached':14s} (the cache steps aside: {why})")
                    continue
                tr, en = statistics.median(c["train"]), statistics.median(c["encode"])
                print(
                    f"{n:12s} {mode:14s} {tr:8.3f} {b_train / tr:5.2f}x {en:11.3f} "
                    f"{b_enc / en:5.2f}x"
                )


if __name__ == "__main__":
    main()
