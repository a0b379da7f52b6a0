"""The same trial the naive way and the project's way, side by side in one process.

Naive: every batch is re-tokenized from text and padded to the global maximum length, and
evaluation recomputes all item embeddings for every batch of users (no caching, no length
buckets). Project: tokenize once (cached), pad each batch to its own maximum, encode the
catalog once per evaluation in length-bucketed no-grad batches.

    python benchmarks/bench_trial.py [--spec studies/quickstart.yaml] [--steps 20] [--repeats 1]

Prints wall seconds of each, the speed ratio, and both metric sets (they should agree up
to float noise: the optimisations change no arithmetic that matters).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

import moo_search.evaluate as evaluate_mod
import moo_search.model.tokens as tokens_mod
import moo_search.trial as trial_mod
from moo_search import load_spec, run_trial
from moo_search.model.recommender import Recommender
from moo_search.model.tokens import TokenTable


class NaiveTokenTable(TokenTable):
    """Re-tokenizes the texts of every batch and pads to ``max_length``."""

    def __init__(self, tokenizer: Any, texts: list[str], max_length: int) -> None:
        enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        super().__init__(list(enc["input_ids"]), int(tokenizer.pad_token_id or 0))
        self.tokenizer, self.texts, self.max_length = tokenizer, texts, max_length

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(
            [self.texts[i] for i in idx],
            truncation=True,
            max_length=self.max_length,
            padding="max_length",
            return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"]

    def length_buckets(self, batch_size: int) -> list[np.ndarray]:
        order = np.arange(len(self))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@contextlib.contextmanager
def naive_mode() -> Iterator[None]:
    models: list[Recommender] = []
    tables: dict[str, TokenTable] = {}
    orig_init = Recommender.__init__
    orig_tok = tokens_mod.tokenize_cached
    orig_eval = evaluate_mod.evaluate_scorer

    def init(self: Recommender, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        models.append(self)

    def tok(tokenizer: Any, texts: list[str], max_length: int) -> TokenTable:
        t = NaiveTokenTable(tokenizer, texts, max_length)
        tables.setdefault("items", t)  # the first table the trial builds is the item table
        return t

    def slow_eval(score: Any, *a: Any, **k: Any) -> Any:
        def rescoring(users: np.ndarray) -> np.ndarray:
            if models and models[-1].alpha > 0:
                models[-1].encode_table(tables["items"], torch.device("cpu"))  # recompute per batch
            return score(users)

        return orig_eval(rescoring, *a, **k)

    Recommender.__init__ = init  # type: ignore[method-assign]
    tokens_mod.tokenize_cached = tok
    trial_mod.evaluate_scorer = slow_eval
    try:
        yield
    finally:
        Recommender.__init__ = orig_init  # type: ignore[method-assign]
        tokens_mod.tokenize_cached = orig_tok
        trial_mod.evaluate_scorer = orig_eval


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--spec", default="studies/quickstart.yaml")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    spec = load_spec(
        args.spec, [f"train.max_steps={args.steps}", "train.progress=false", *args.set]
    )
    trial_mod.prepare_data(spec)  # data loading is outside both timings
    run_trial(spec.with_params({"train.max_steps": 1}))  # warm imports and caches for both

    times: dict[str, list[float]] = {"naive": [], "project": []}
    results: dict[str, Any] = {}
    for _ in range(args.repeats):
        for mode in ("naive", "project"):  # interleaved: machine noise hits both alike
            tokens_mod._CACHE.clear()
            ctx = naive_mode() if mode == "naive" else contextlib.nullcontext()
            with ctx:
                t = time.perf_counter()
                results[mode] = run_trial(spec)
                times[mode].append(time.perf_counter() - t)
    naive, proj = float(np.median(times["naive"])), float(np.median(times["project"]))
    print(f"spec {args.spec}, {args.steps} steps, {args.repeats} repeat(s), median wall seconds")
    print(f"  naive   {naive:8.1f} s")
    print(f"  project {proj:8.1f} s")
    print(f"  speed ratio naive/project = {naive / proj:.2f}x")
    keys = ["precision@10", "ndcg@10", "ild@10", "novelty@10", "coverage@10", "ctr_auc"]
    print(f"\n{'metric (test)':<16}{'naive':>10}{'project':>10}")
    for key in keys:
        print(
            f"{key:<16}{results['naive'].metrics['test'][key]:>10.4f}"
            f"{results['project'].metrics['test'][key]:>10.4f}"
        )


if __name__ == "__main__":
    main()
