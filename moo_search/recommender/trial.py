"""``run_trial(config) -> TrialResult``: one PEFT fine-tune, evaluated on validation and test.

The lifecycle (seeding, timing, data, model, training, evaluation, artifacts) lives in
``run_trial``; the model-specific parts are the recommender and the training loop.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_search.objective import metric_value
from moo_search.recommender.evaluate import evaluate_scorer
from moo_search.recommender.inference import CatalogScorer
from moo_search.recommender.memory import keep_scores
from moo_search.recommender.metrics import is_task_metric
from moo_search.recommender.prepare import (
    Collaborative,
    PreparedData,
    build_model,
    collaborative_backbone,
    history_rows,
    item_alpha,
    item_neighbours,
    prepare_data,
)
from moo_search.recommender.spec import RecommenderSpec, recommender_spec
from moo_search.recommender.train.ctr_eval import fit_task_heads, task_metrics

__all__ = [
    "Collaborative",
    "PreparedData",
    "TrialResult",
    "build_model",
    "collaborative_backbone",
    "metric_value",
    "prepare_data",
    "run_trial",
]

logger = logging.getLogger("moo_search")


@dataclass
class TrialResult:
    """What a trial reports: metrics per split, cost, and where its artifacts are."""

    metrics: dict[str, dict[str, float]]  # {"val": {...}, "test": {...}}
    cost: dict[str, float]
    artifact_dir: str | None = None
    history: dict[str, Any] = field(default_factory=dict)
    base_model: str = ""
    # inference-only variants of this fine-tune:
    # [{"knobs": {path: value}, "metrics": {...}, "hits": {...}}]
    sweep: list[dict[str, Any]] = field(default_factory=list)
    # relevant items in each test user's top k, packed: {"k", "all", "tail"} (hits_per_user)
    hits: dict[str, Any] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)  # name, params, sha256 of W

    def value(self, metric: str, split: str = "val") -> float:
        return metric_value(self.metrics, self.cost, metric, split)

    def values(self, metrics: list[str], split: str = "val") -> list[float]:
        return [self.value(m, split) for m in metrics]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _coerce(config: RecommenderSpec | dict[str, Any] | str | Path) -> RecommenderSpec:
    if isinstance(config, RecommenderSpec):
        return config
    if isinstance(config, dict):
        return recommender_spec(config)
    from moo_search.errors import SpecError
    from moo_search.recommender.spec import load_recommender_spec

    if not isinstance(config, str | Path):
        raise SpecError(
            "run_trial: expected a RecommenderSpec, a dict of spec data or the path of a YAML spec, "
            f"got {type(config).__name__}"
        )
    return load_recommender_spec(config)


RungHook = Callable[[int, dict[str, dict[str, float]], dict[str, float]], None]
"""(step, {"val": metrics on the rung's user sample}, cost so far) -> None, or raise to stop."""


def _rung_users(split: Any, n: int) -> np.ndarray:
    """A fixed sample of validation users (the same for every trial of a study, whatever its
    seed), so that rung vectors are comparable and cheap."""
    users = np.unique(split.part("val")["user"].to_numpy())
    return np.sort(np.random.default_rng(0).permutation(users)[:n])


def run_trial(
    config: RecommenderSpec | dict[str, Any] | str | Path,
    *,
    artifact_dir: str | Path | None = None,
    keep_model: bool = False,
    sweep: list[dict[str, float]] | None = None,
    on_rung: RungHook | None = None,
) -> TrialResult:
    """Fine-tune the configured adapter and evaluate it on validation and test.

    Args:
        config: A :class:`RecommenderSpec` (its trial part is used), plain data or a YAML path.
        artifact_dir: Where to write the adapter (PEFT format), heads, metrics, loss curve,
            top-K lists and the resolved config. Nothing is written when None.
        keep_model: Attach the trained model to ``result.history["_model"]``, its served
            scores (a ``Scorer``) to ``result.history["_scores"]`` and its ``CatalogScorer``
            to ``result.history["_scorer"]`` (tests, benchmarks, export).
        sweep: Settings of inference-only knobs (``{"rerank.mmr_lambda": 0.5, ...}``,
            ``{"fusion.serve_tail_weight": 3.0}``) to evaluate the trained model at as well,
            from its kept embeddings and scores (no re-encode); their metrics land in
            ``result.sweep``.
        on_rung: Called at each rung of ``driver.early_stopping`` with the step and the
            validation metrics on its fixed user sample (and the cost so far); it may raise
            (``optuna.TrialPruned``) to stop the trial there.

    Raises:
        SpecError: a config error found before training (model path, target modules, ...).
        TrialFailed: training stopped for a stated reason (NaN or exploding loss).
    """
    from moo_search.recommender.model.tokens import tokenize_cached
    from moo_search.recommender.train.loop import TrainData, autocast_for, pick_device, train

    spec = _coerce(config)
    t0 = time.perf_counter()
    _seed_all(spec.seed)
    device = pick_device(spec.train.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    data = prepare_data(spec)
    model, tokenizer, base_id = build_model(spec, data)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    item_tokens = tokenize_cached(tokenizer, data.item_texts, spec.model.max_item_length)
    user_tokens = tokenize_cached(tokenizer, data.user_texts, spec.model.max_user_length)
    autocast, _ = autocast_for(device, spec.train.amp)
    if model.prefix is not None:  # the frozen lower layers, once per study
        for table in (item_tokens, user_tokens):
            model.prefix.attach(table, device, autocast)
    split = data.split
    thr = split.threshold
    feats = data.features / np.maximum(np.linalg.norm(data.features, axis=1, keepdims=True), 1e-12)
    train_users = split.train["user"].to_numpy()
    train_items = split.train["item"].to_numpy()
    clicks = (split.train["rating"].to_numpy() >= thr).astype(np.float32)
    like_user, like_item = data.like_rates.pair_logits(train_users, train_items, clicks)
    tdata = TrainData(
        users=train_users,
        items=train_items,
        clicks=clicks,
        like_user=like_user.astype(np.float32),
        like_item=like_item.astype(np.float32),
        user_tokens=user_tokens,
        item_tokens=item_tokens,
        features=torch.as_tensor(feats, dtype=torch.float32),
        self_information=torch.as_tensor(-np.log2(data.item_pop), dtype=torch.float32),
        neighbours=item_neighbours(spec, data, model),
        ratings=split.train["rating"].to_numpy().astype(np.float32),
    )
    ks = spec.requested_ks()
    user_items = history_rows(spec, data)

    def catalog_scorer() -> CatalogScorer:
        return CatalogScorer.encode(
            model,
            item_tokens,
            user_tokens,
            device,
            autocast,
            history=user_items,
            new_item_neighbours=spec.fusion.new_item_neighbours,
        )

    def val_metrics(scorer: CatalogScorer, users: np.ndarray | None = None) -> dict[str, float]:
        res = evaluate_scorer(
            scorer,
            data.ds,
            split,
            eval_cfg=spec.eval,
            rerank_cfg=spec.rerank,
            parts=("val",),
            features=data.features,
            ks=ks,
            only_users=users,
        )
        assert isinstance(res, dict)
        return res["val"]

    def validate() -> dict[str, float]:
        return val_metrics(catalog_scorer())

    es = spec.driver.early_stopping
    rungs = sorted({max(1, round(f * spec.train.max_steps)) for f in es.rungs})
    sample = _rung_users(split, es.sample_users)
    wants_tasks = any(is_task_metric(o.metric) for o in spec.objectives)
    task_kw = {"negatives": spec.eval.click_negatives, "seed": spec.seed}

    def checkpoint(step: int) -> None:
        assert on_rung is not None
        scorer = catalog_scorer()
        metrics = val_metrics(scorer, sample)  # the fixed sample: cheap, comparable
        if wants_tasks:
            metrics.update(task_metrics(scorer, split, "val", **task_kw))
        cost = {"seconds": time.perf_counter() - t0, "trainable_params": float(trainable)}
        on_rung(step, {"val": metrics}, cost)  # the costs of spec.RUNG_COSTS

    history = train(
        model,
        tdata,
        train_cfg=spec.train,
        loss_cfg=spec.loss,
        seed=spec.seed,
        device=device,
        evaluate=validate,
        checkpoints=rungs if on_rung is not None else (),
        on_checkpoint=checkpoint if on_rung is not None else None,
    )

    # from here on the model scores with its serving weights (fusion.serve_*; by default the
    # trained ones), and its artifact records them
    model.item_alpha.copy_(torch.as_tensor(item_alpha(spec, data, serving=True)))
    scorer = catalog_scorer()
    if scorer.history is not None and spec.fusion.new_item_neighbours is None:
        scorer = _tune_new_item_neighbours(spec, data, scorer)
        history.new_item_neighbours = scorer.new_item_neighbours
        spec = spec.with_params({"fusion.new_item_neighbours": scorer.new_item_neighbours})
    history.task_fit = fit_task_heads(scorer, split, **task_kw)
    history.ctr_fit_logloss = history.task_fit.get("conversion_fit_loss")
    # re-ranking reuses the scores: kept, or recomputed per chunk for a large catalog
    kept_scores = keep_scores(scorer, data.ds.n_users, data.ds.n_items)

    out = evaluate_scorer(
        kept_scores,
        data.ds,
        split,
        eval_cfg=spec.eval,
        rerank_cfg=spec.rerank,
        parts=("val", "test"),
        features=data.features,
        ks=ks,
        return_lists=True,
    )
    assert isinstance(out, tuple)
    metrics, lists = out
    for part in ("val", "test"):
        metrics[part].update(task_metrics(scorer, split, part, **task_kw))
    test_ctx = eval_context(spec, data, "test")  # once: every variant's hits are counted on it
    swept = []
    for knobs in sweep or []:
        vmetrics, vlists = _variant(spec, data, scorer, kept_scores, metrics, knobs, ks)
        vhits = hits_per_user(spec, test_ctx, *vlists["test"])
        swept.append({"knobs": knobs, "metrics": vmetrics, "hits": vhits})

    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    cost = {
        "seconds": time.perf_counter() - t0,
        "train_seconds": history.seconds,
        "train_tokens": float(history.train_tokens),
        "encoded_tokens": float(model.encoded_tokens),
        "trainable_params": float(trainable),
        "peak_mem_mb": float(peak),
    }
    result = TrialResult(
        metrics=metrics,
        cost=cost,
        history=history.to_dict(),
        base_model=base_id,
        sweep=swept,
        backbone=dict(model.backbone_info),
        hits=hits_per_user(spec, test_ctx, *lists["test"]),
    )
    if artifact_dir is not None:
        result.artifact_dir = str(_write_artifacts(Path(artifact_dir), spec, model, result, lists))
    if keep_model:
        result.history["_model"] = model
        result.history["_scores"] = kept_scores  # user indices -> served fused scores
        result.history["_scorer"] = scorer  # its CatalogScorer (task heads, embeddings)
    logger.info(
        "trial done in %.1fs: %s",
        cost["seconds"],
        {k: round(v, 4) for k, v in metrics["val"].items() if "/" not in k},
    )
    return result


def hits_per_user(
    spec: RecommenderSpec, ctx: Any, users: np.ndarray, lists: np.ndarray
) -> dict[str, Any]:
    """Relevant items in each evaluated test user's top ``k = eval.k`` (all and tail ones;
    ``ctx``: the test split's :func:`eval_context`), packed: what pairs a trial with a
    baseline user by user (``STUDY_ATTR.BASELINE_HITS``). ``{"k": k, "all": ..., "tail": ...}``."""
    from moo_search.recommender.metrics import user_hits
    from moo_search.study import pack_counts

    hits = user_hits(lists[:, : spec.eval.k], users, ctx)
    return {"k": spec.eval.k, **{name: pack_counts(h) for name, h in hits.items()}}


def eval_context(spec: RecommenderSpec, data: PreparedData, part: str) -> Any:
    """A split part's :class:`~moo_search.recommender.metrics.EvalContext` under the spec's ``eval``."""
    from moo_search.recommender.metrics import EvalContext

    return EvalContext.from_split(
        data.split,
        part,
        data.features,
        cold_user_max=spec.eval.cold_user_max,
        head_share=spec.eval.head_share,
    )


def _tune_new_item_neighbours(
    spec: RecommenderSpec, data: PreparedData, scorer: CatalogScorer
) -> CatalogScorer:
    """The scorer with the neighbour count of its new-item scores chosen on validation
    (cold_item/ndcg@eval.k over the grid the content baselines are tuned on, as they are).
    Among new items the fused score is an increasing map of the text score, so ranking by
    the text score alone decides."""
    from dataclasses import replace

    from moo_search.recommender.evaluate import cold_item_eval
    from moo_search.recommender.model.content import KNN_NEIGHBOURS

    split, k = data.split, spec.eval.k
    items, _ = split.cold_part("val")
    n_warm = int(split.warm.sum())
    best: tuple[float, CatalogScorer] | None = None
    for n in KNN_NEIGHBOURS:
        cand = replace(scorer, new_item_neighbours=min(n or n_warm, n_warm), _neighbour_sims=None)

        def score(users: np.ndarray, cand: CatalogScorer = cand) -> np.ndarray:
            out = np.zeros((len(users), split.n_items), dtype=np.float32)
            text = cand.new_item_text(cand.history[users], items)
            out[:, items] = text.cpu().numpy()
            return out

        value = cold_item_eval(score, split, "val", [k], spec.eval.batch_size).get(
            f"cold_item/ndcg@{k}", float("-inf")
        )
        if best is None or value > best[0]:
            best = (value, cand)
        cand._neighbour_sims = None  # the kept candidate recomputes it once, on use
    assert best is not None
    return best[1]


def _variant(
    spec: RecommenderSpec,
    data: PreparedData,
    scorer: CatalogScorer,
    scores: Any,
    metrics: dict[str, dict[str, float]],
    knobs: dict[str, float],
    ks: tuple[int, ...],
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The trained model's metrics at other inference-only knobs: re-ranking ones on the kept
    scores, serving fusion weights (``fusion.serve_*``) on the kept embeddings. The CTR head's
    inputs do not depend on either, so its metrics are the fine-tune's. Also returns the
    top-k lists per part, as :func:`evaluate_scorer` does."""
    vspec = spec.with_params(knobs)
    if any(k.startswith("fusion.") for k in knobs):
        served = scorer.serving(item_alpha(vspec, data, serving=True))
        scores = keep_scores(served, data.ds.n_users, data.ds.n_items)  # like the kept scores
    out = evaluate_scorer(
        scores,
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        rerank_cfg=vspec.rerank,
        parts=("val", "test"),
        features=data.features,
        ks=ks,
        return_lists=True,
    )
    assert isinstance(out, tuple)
    res, lists = out
    for part in res:
        res[part].update({k: v for k, v in metrics[part].items() if is_task_metric(k)})
    return res, lists


def _write_artifacts(
    root: Path,
    spec: RecommenderSpec,
    model: Any,
    result: TrialResult,
    lists: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Path:
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    spec.save(root / "config.yaml")
    if spec.adapter.type != "none":
        model.encoder.save_pretrained(str(root / "adapter"))
    save_file(model.head_state(), str(root / "heads.safetensors"))
    arrays: dict[str, Any] = {f"{p}_users": users for p, (users, _) in lists.items()}
    arrays.update({f"{p}_lists": top for p, (_, top) in lists.items()})
    np.savez_compressed(root / "lists.npz", **arrays)
    (root / "metrics.json").write_text(
        json.dumps(
            {"metrics": result.metrics, "cost": result.cost, "base_model": result.base_model},
            indent=2,
            sort_keys=True,
        )
    )
    curve = {k: result.history[k] for k in ("steps", "loss", "terms", "evals", "best_step")}
    (root / "loss_curve.json").write_text(json.dumps(curve, sort_keys=True))
    return root
