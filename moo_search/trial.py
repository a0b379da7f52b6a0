"""``run_trial(config) -> TrialResult``: one PEFT fine-tune, evaluated on validation and test.

The lifecycle (seeding, timing, data, model, training, evaluation, artifacts) lives in
``run_trial``; the model-specific parts are the recommender and the training loop.
"""

from __future__ import annotations

import json
import logging
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_search.data import Dataset, Split, ensure_dataset, load_split, render_items, render_users
from moo_search.evaluate import evaluate_scorer
from moo_search.metrics import auc, logloss
from moo_search.model.inference import CatalogScorer
from moo_search.spec import StudySpec, spec_from_dict

__all__ = ["TrialResult", "metric_value", "prepare_data", "run_trial"]

logger = logging.getLogger("moo_search")

_K_RE = re.compile(r"@(\d+)$")


@dataclass
class TrialResult:
    """What a trial reports: metrics per split, cost, and where its artifacts are."""

    metrics: dict[str, dict[str, float]]  # {"val": {...}, "test": {...}}
    cost: dict[str, float]
    artifact_dir: str | None = None
    history: dict[str, Any] = field(default_factory=dict)
    base_model: str = ""
    # inference-only variants of this fine-tune: [{"knobs": {path: value}, "metrics": {...}}]
    sweep: list[dict[str, Any]] = field(default_factory=list)
    backbone: dict[str, Any] = field(default_factory=dict)  # name, params, sha256 of W

    def value(self, metric: str, split: str = "val") -> float:
        return metric_value(self.metrics, self.cost, metric, split)

    def values(self, metrics: list[str], split: str = "val") -> list[float]:
        return [self.value(m, split) for m in metrics]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metric_value(
    metrics: dict[str, dict[str, float]], cost: dict[str, float], metric: str, split: str = "val"
) -> float:
    if metric.startswith("cost/"):
        return float(cost[metric.removeprefix("cost/")])
    if metric not in metrics[split]:
        raise KeyError(f"metric {metric!r} was not computed (a slice with no users?)")
    return float(metrics[split][metric])


@dataclass
class PreparedData:
    ds: Dataset
    split: Split
    item_texts: list[str]
    user_texts: list[str]
    features: np.ndarray
    item_counts: np.ndarray
    item_pop: np.ndarray  # share of train users per item; unseen items 1 / (n_users + 1)
    like_rates: Any  # moo_search.model.ctr.LikeRates of the train exposures


@lru_cache(maxsize=4)
def _prepare(data_json: str) -> PreparedData:
    from moo_search.model.ctr import split_like_rates
    from moo_search.spec import DataConfig

    cfg = DataConfig.model_validate_json(data_json)
    ds, split = load_split(cfg)
    user_counts, item_counts = split.train_counts()
    n_train_users = max(int((user_counts > 0).sum()), 1)
    return PreparedData(
        ds=ds,
        split=split,
        item_texts=render_items(ds),
        user_texts=render_users(ds, split.train, cfg.history_len),
        features=ds.item_features(),
        item_counts=item_counts,
        item_pop=np.where(item_counts > 0, item_counts / n_train_users, 1.0 / (n_train_users + 1)),
        like_rates=split_like_rates(split),
    )


def prepare_data(spec: StudySpec) -> PreparedData:
    """Dataset, split and texts for ``spec.data`` (cached per process)."""
    ensure_dataset(spec.data)
    return _prepare(spec.data.model_dump_json())


def _requested_ks(spec: StudySpec) -> tuple[int, ...]:
    names = [o.metric for o in spec.objectives] + [c.metric for c in spec.constraints]
    names.append(spec.train.early_stop_metric)
    return tuple(sorted({int(m.group(1)) for n in names if (m := _K_RE.search(n))}))


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _coerce(config: StudySpec | dict[str, Any] | str | Path) -> StudySpec:
    if isinstance(config, StudySpec):
        return config
    if isinstance(config, dict):
        return spec_from_dict(config)
    from moo_search.spec import load_spec

    return load_spec(config)


@dataclass
class Collaborative:
    """A study's collaborative backbone on its split: W (None for mf), user scores, params."""

    name: str
    weights: np.ndarray | None
    scores: np.ndarray | None
    params: dict[str, Any]


def collaborative_backbone(spec: StudySpec, data: PreparedData) -> Collaborative:
    """The ``fusion.cf`` backbone, from the on-disk cache after its first computation."""
    from moo_search.model.backbones import backbone_weights

    w, params = backbone_weights(
        spec.fusion.cf,
        split=data.split,
        features=data.features,
        eval_cfg=spec.eval,
        fusion=spec.fusion,
    )
    scores = None
    if w is not None:
        x = data.split.matrix("train").astype(np.float32).tocsr()
        scores = np.asarray(x @ w, dtype=np.float32)
    return Collaborative(spec.fusion.cf, w, scores, params)


def build_model(spec: StudySpec, data: PreparedData) -> tuple[Any, Any, str]:
    """(Recommender, tokenizer, base model id); config errors surface here, before training."""
    from moo_search.model.adapters import apply_adapter
    from moo_search.model.backbones import backbone_sha256
    from moo_search.model.encoder import load_encoder
    from moo_search.model.recommender import Recommender

    encoder, tokenizer, base_id = load_encoder(spec.model)
    encoder = apply_adapter(encoder, spec.adapter)
    cf = collaborative_backbone(spec, data)
    rates = data.like_rates
    model = Recommender(
        encoder=encoder,
        n_users=data.ds.n_users,
        n_items=data.ds.n_items,
        id_dim=spec.fusion.id_dim,
        alpha=spec.fusion.alpha,
        temperature=spec.loss.temperature,
        pooling=spec.model.pooling,
        item_logpop=np.log(data.item_pop),
        cf_weights=cf.weights,
        cf_scores=cf.scores,
        user_like_logit=rates.user_logit,
        item_like_logit=rates.item_logit,
        global_like_logit=rates.global_logit,
    )
    model.backbone_info = {
        "name": cf.name,
        "params": cf.params,
        "sha256": backbone_sha256(cf.weights) if cf.weights is not None else None,
    }
    return model, tokenizer, base_id


def run_trial(
    config: StudySpec | dict[str, Any] | str | Path,
    *,
    artifact_dir: str | Path | None = None,
    keep_model: bool = False,
    sweep: list[dict[str, float]] | None = None,
) -> TrialResult:
    """Fine-tune the configured adapter and evaluate it on validation and test.

    Args:
        config: A :class:`StudySpec` (its trial part is used), plain data or a YAML path.
        artifact_dir: Where to write the adapter (PEFT format), heads, metrics, loss curve,
            top-K lists and the resolved config. Nothing is written when None.
        keep_model: Attach the trained model to ``result.history["_model"]`` (tests, export).
        sweep: Settings of inference-only knobs (``{"rerank.mmr_lambda": 0.5, ...}``) to
            evaluate the trained model at as well, from one kept score matrix (no re-encode);
            their metrics land in ``result.sweep``.

    Raises:
        SpecError: a config error found before training (model path, target modules, ...).
        TrialFailed: training stopped for a stated reason (NaN or exploding loss).
    """
    from moo_search.model.tokens import tokenize_cached
    from moo_search.train.loop import TrainData, pick_device, train

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
    )
    ks = _requested_ks(spec)

    def catalog_scorer() -> CatalogScorer:
        return CatalogScorer.encode(model, item_tokens, user_tokens, device)

    def validate() -> dict[str, float]:
        res = evaluate_scorer(
            catalog_scorer(),
            data.ds,
            split,
            eval_cfg=spec.eval,
            rerank_cfg=spec.rerank,
            parts=("val",),
            features=data.features,
            ks=ks,
        )
        assert isinstance(res, dict)
        return res["val"]

    history = train(
        model,
        tdata,
        train_cfg=spec.train,
        loss_cfg=spec.loss,
        seed=spec.seed,
        device=device,
        evaluate=validate,
    )

    scorer = catalog_scorer()
    history.ctr_fit_logloss = _fit_ctr(scorer, tdata)
    kept = scorer(np.arange(data.ds.n_users))  # re-ranking reuses it

    def kept_scores(users: np.ndarray) -> np.ndarray:
        return kept[users]

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
        metrics[part].update(_ctr_metrics(scorer, split, part))
    swept = [
        {"knobs": knobs, "metrics": _rerank_variant(spec, data, kept_scores, metrics, knobs, ks)}
        for knobs in sweep or []
    ]

    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    cost = {
        "seconds": time.perf_counter() - t0,
        "train_seconds": history.seconds,
        "train_tokens": float(history.train_tokens),
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
    )
    if artifact_dir is not None:
        result.artifact_dir = str(_write_artifacts(Path(artifact_dir), spec, model, result, lists))
    if keep_model:
        result.history["_model"] = model
    logger.info(
        "trial done in %.1fs: %s",
        cost["seconds"],
        {k: round(v, 4) for k, v in metrics["val"].items() if "/" not in k},
    )
    return result


def _rerank_variant(
    spec: StudySpec,
    data: PreparedData,
    scores: Any,
    metrics: dict[str, dict[str, float]],
    knobs: dict[str, float],
    ks: tuple[int, ...],
) -> dict[str, dict[str, float]]:
    """The trained model's metrics with other re-ranking knobs (CTR metrics do not change)."""
    from moo_search.spec import RerankConfig

    rr = spec.rerank.model_dump()
    rr.update({k.split(".", 1)[1]: v for k, v in knobs.items()})
    out = evaluate_scorer(
        scores,
        data.ds,
        data.split,
        eval_cfg=spec.eval,
        rerank_cfg=RerankConfig(**rr),
        parts=("val", "test"),
        features=data.features,
        ks=ks,
    )
    assert isinstance(out, dict)
    for part in out:
        out[part].update({k: v for k, v in metrics[part].items() if k.startswith("ctr_")})
    return out


def _pair_features(
    scorer: CatalogScorer,
    users: np.ndarray,
    items: np.ndarray,
    *,
    like: tuple[np.ndarray, np.ndarray] | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """CTR features of (user, item) pairs; per-user z-scores over the full catalog."""
    from moo_search.model.recommender import CTR_FEATURES, standardise

    model, device = scorer.model, scorer.device
    out = []
    with torch.no_grad():
        for start in range(0, len(users), chunk):
            part = slice(start, start + chunk)
            uu = torch.as_tensor(users[part].copy(), device=device)
            ii = torch.as_tensor(items[part].copy(), device=device)
            uniq, inv = torch.unique(uu, return_inverse=True)
            r_z = standardise(model.collaborative(uniq).float())[inv, ii]
            s_z = None
            if scorer.user_emb is not None:
                s_z = standardise(scorer.semantic(scorer.user_emb[uniq]))[inv, ii]
            kw: dict[str, torch.Tensor] = {}
            if like is not None:
                kw["user_like"] = torch.as_tensor(like[0][part], device=device)
                kw["item_like"] = torch.as_tensor(like[1][part], device=device)
            out.append(model.ctr_features(uu, ii, r_z, s_z, **kw))
    return torch.cat(out) if out else torch.zeros(0, len(CTR_FEATURES), device=device)


def _fit_ctr(scorer: CatalogScorer, tdata: Any) -> float:
    """Refit the CTR head on every train exposure, on frozen features (leave-one-out
    like-rates, so what it learns on train holds on held-out exposures)."""
    from moo_search.train.ctr import fit_ctr_head

    x = _pair_features(scorer, tdata.users, tdata.items, like=(tdata.like_user, tdata.like_item))
    y = torch.as_tensor(tdata.clicks, dtype=torch.float32, device=scorer.device)
    return fit_ctr_head(scorer.model.ctr, x, y)


def _ctr_metrics(scorer: CatalogScorer, split: Split, part: str) -> dict[str, float]:
    """CTR head against the held-out exposures of ``part`` (click = rating >= threshold)."""
    df = split.part(part)
    if len(df) == 0:
        return {}
    x = _pair_features(scorer, df["user"].to_numpy(), df["item"].to_numpy())
    with torch.no_grad():
        p = torch.sigmoid(scorer.model.ctr_logit(x)).float().cpu().numpy()
    y = (df["rating"].to_numpy() >= split.threshold).astype(np.float64)
    return {"ctr_auc": auc(y, p), "ctr_logloss": logloss(y, p)}


def _write_artifacts(
    root: Path,
    spec: StudySpec,
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
