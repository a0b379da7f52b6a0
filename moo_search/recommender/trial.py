"""``run_trial(config) -> TrialResult``: one PEFT fine-tune, evaluated on validation and test.

A trial is a :class:`Trial`: named stages run in order (:attr:`Trial.STAGES`: prepare, build,
fit, score, evaluate, variants, save), each a method that a subclass may replace, with the
trial's state on the instance (``trial.model``, ``trial.scorer``, ``trial.scores`` after
:meth:`Trial.run`). What a trial measures besides its main metrics is in :mod:`.trial_eval`.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from moo_search.objective import metric_value
from moo_search.recommender.evaluate import evaluate_lists
from moo_search.recommender.inference import CatalogScorer
from moo_search.recommender.memory import keep_scores
from moo_search.recommender.metrics import is_task_metric
from moo_search.recommender.new_item_choice import tune_new_items
from moo_search.recommender.prepare import (
    build_model,
    history_rows,
    item_alpha,
    item_hard_negatives,
    item_neighbours,
    prepare_data,
)
from moo_search.recommender.records import HITS_RECORD
from moo_search.recommender.spec import RecommenderSpec, recommender_spec
from moo_search.recommender.task_eval import TaskFeatures, fit_task_heads, task_metrics
from moo_search.recommender.trial_eval import (
    evaluate_variant,
    hits_per_user,
    rung_users,
    trial_book,
    val_metrics,
)

if TYPE_CHECKING:
    from moo_search.recommender.candidates import ScoreBook
    from moo_search.recommender.metrics._context import EvalContext
    from moo_search.recommender.model.recommender import Recommender
    from moo_search.recommender.model.tokens import TokenTable
    from moo_search.recommender.prepare import PreparedData
    from moo_search.recommender.train.loop import TrainHistory

__all__ = ["Trial", "TrialResult", "run_trial"]

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
    # [{"knobs": {path: value}, "metrics": {...}, "records": {"test_hits": {...}}}]
    variants: list[dict[str, Any]] = field(default_factory=list)
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
            "run_trial: expected a RecommenderSpec, a dict of spec data or the path of a YAML "
            f"spec, got {type(config).__name__}"
        )
    return load_recommender_spec(config)


RungHook = Callable[[int, dict[str, dict[str, float]], dict[str, float]], None]
"""(step, {"val": metrics on the rung's user sample}, cost so far) -> None, or raise to stop."""


def run_trial(
    config: RecommenderSpec | dict[str, Any] | str | Path,
    *,
    artifact_dir: str | Path | None = None,
    variants: list[dict[str, float]] | None = None,
    on_rung: RungHook | None = None,
) -> TrialResult:
    """Fine-tune the configured adapter and evaluate it on validation and test.

    Args:
        config: A :class:`RecommenderSpec`, plain data or a YAML path.
        artifact_dir: Where to write the adapter (PEFT format), heads, metrics, loss curve,
            top-K lists and the resolved config. Nothing is written when None.
        variants: Settings of inference-only knobs (``{"rerank.mmr_lambda": 0.5, ...}``,
            ``{"fusion.serve_tail_weight": 3.0}``) to evaluate the trained model at as well,
            from its kept embeddings and scores (no re-encode); their metrics land in
            ``result.variants``.
        on_rung: Called at each rung of ``driver.early_stopping`` with the step and the
            validation metrics on its fixed user sample (and the cost so far); it may raise
            (``optuna.TrialPruned``) to stop the trial there.

    Raises:
        SpecError: a config error found before training (model path, target modules, ...).
        TrialFailed: training stopped for a stated reason (NaN or exploding loss).

    ``Trial(config, ...).run()`` is the same and keeps the trained model, its scorer and its
    served scores on the instance.
    """
    return Trial(config, artifact_dir=artifact_dir, variants=variants, on_rung=on_rung).run()


class Trial:
    """One fine-tune as named stages (:attr:`STAGES`), run in order by :meth:`run`.

    Each stage is a method that reads and sets attributes of the instance; a subclass replaces
    one by overriding it (RecBole's trainer, pymoo's public method over private hooks).
    """

    STAGES = ("prepare", "build", "fit", "score", "evaluate", "variants", "save")

    # The state the stages share, by the stage that sets it (:meth:`begin`: t0, device)
    t0: float
    device: torch.device
    data: PreparedData  # prepare
    model: Recommender  # build: the model on its device and what it reads
    base_id: str
    trainable: int
    item_tokens: TokenTable
    user_tokens: TokenTable
    autocast: Callable[[], Any] | None
    user_items: Any
    history: TrainHistory  # fit
    scorer: CatalogScorer  # score: served, and its scores (kept, or computed per chunk)
    scores: Callable[[np.ndarray], np.ndarray]
    book: ScoreBook  # the scores' candidates, read by evaluate and every re-ranked variant
    task_features: TaskFeatures  # the task pairs' features, read by the heads' fit and metrics
    metrics: dict[str, dict[str, float]]  # evaluate: per part, with its lists and test context
    lists: dict[str, tuple[np.ndarray, np.ndarray]]
    test_ctx: EvalContext
    variant_results: list[dict[str, Any]]  # variants
    result: TrialResult  # save

    def __init__(
        self,
        config: RecommenderSpec | dict[str, Any] | str | Path,
        *,
        artifact_dir: str | Path | None = None,
        variants: list[dict[str, float]] | None = None,
        on_rung: RungHook | None = None,
    ) -> None:
        self.spec = _coerce(config)
        self.artifact_dir = Path(artifact_dir) if artifact_dir is not None else None
        self.variant_knobs = list(variants or [])
        self.on_rung = on_rung
        self.task_kw: dict[str, Any] = {
            "negatives": self.spec.eval.click_negatives,
            "seed": self.spec.seed,
        }
        self.ks = self.spec.requested_ks()
        self._rung_sample: np.ndarray | None = None  # the early-stopping rungs' users

    def run(self) -> TrialResult:
        self.begin()
        for stage in self.STAGES:
            getattr(self, stage)()
        self.done()
        return self.result

    def begin(self) -> None:
        """The clock, the seeds, the device (before the first stage)."""
        from moo_search.recommender.train._setup import pick_device

        self.t0 = time.perf_counter()
        _seed_all(self.spec.seed)
        self.device = pick_device(self.spec.train.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def done(self) -> None:  # after the last stage
        logger.info(
            "trial done in %.1fs: %s",
            self.result.cost["seconds"],
            {k: round(v, 4) for k, v in self.metrics["val"].items() if "/" not in k},
        )

    # ---- stages

    def prepare(self) -> None:
        """The data: dataset, split, texts, features, like-rates, backbone inputs."""
        self.data = prepare_data(self.spec)

    def build(self) -> None:
        """The model on its device, its token tables, the frozen-layer cache."""
        from moo_search.recommender.model.tokens import text_table
        from moo_search.recommender.train._setup import autocast_for

        spec, data = self.spec, self.data
        self.model, tokenizer, self.base_id = build_model(spec, data)
        self.model.to(self.device)
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.item_tokens = text_table(tokenizer, data.item_texts, spec.model, "item")
        self.user_tokens = text_table(tokenizer, data.user_texts, spec.model, "user")
        self.autocast, _ = autocast_for(self.device, spec.train.amp)
        if self.model.prefix is not None:  # the frozen lower layers, once per study
            for table in (self.item_tokens, self.user_tokens):
                self.model.prefix.attach(table, self.device, self.autocast)
        self.user_items = history_rows(spec, data)

    def fit(self) -> None:
        """Train, validating and calling the rung hook at the early-stopping checkpoints."""
        from moo_search.recommender.train.loop import train

        self.history = train(self.model, self.train_data(), **self.train_options())

    def train_options(self) -> dict[str, Any]:
        """``train``'s (and ``Trainer``'s) keywords after the model and data: the spec's
        sections, the seed, validation, the rung hook at the early-stopping checkpoints."""
        spec = self.spec
        rungs = sorted(
            {max(1, round(f * spec.train.max_steps)) for f in spec.driver.early_stopping.rungs}
        )
        hook = self.on_rung is not None
        return {
            "train_cfg": spec.train,
            "loss_cfg": spec.loss,
            "seed": spec.seed,
            "device": self.device,
            "evaluate": lambda: val_metrics(self.spec, self.data, self.catalog_scorer(), self.ks),
            "checkpoints": rungs if hook else (),
            "on_checkpoint": self._checkpoint if hook else None,
        }

    def score(self) -> None:
        """The served scorer (fusion.serve_*), its new-item neighbours chosen on validation,
        the task heads fitted, the scores kept for re-ranking (or recomputed per chunk)."""
        spec, data = self.spec, self.data
        alpha: torch.Tensor = self.model.item_alpha  # type: ignore[assignment]
        alpha.copy_(torch.as_tensor(item_alpha(spec, data, serving=True)))
        scorer = self.catalog_scorer()
        scorer, chosen = tune_new_items(spec, data, scorer)
        if chosen:
            self.history.new_item_neighbours = scorer.new_item_neighbours
            self.history.new_items = chosen
            self.spec = spec.with_params(chosen)
        self.task_features = TaskFeatures(scorer, data.split, **self.task_kw)
        fitted = fit_task_heads(scorer, data.split, **self.task_kw, features=self.task_features)
        self.history.task_fit, self.history.ctr_fit_logloss = (
            fitted,
            fitted.get("conversion_fit_loss"),
        )
        self.scorer = scorer
        self.scores = keep_scores(scorer, data.ds.n_users, data.ds.n_items)
        self.book = trial_book(spec, data, self.scores, self.variant_knobs)

    def evaluate(self) -> None:
        """Metrics on validation and test (lists, then the task metrics), and test hits."""
        spec, data = self.spec, self.data
        self.metrics, self.lists = evaluate_lists(
            self.scores,
            data.ds,
            data.split,
            eval_cfg=spec.eval,
            rerank_cfg=spec.rerank,
            parts=("val", "test"),
            features=data.features,
            ks=self.ks,
            book=self.book,
        )
        kw = {**self.task_kw, "features": self.task_features}
        for part in ("val", "test"):
            self.metrics[part].update(task_metrics(self.scorer, data.split, part, **kw))
        self.test_ctx = self.book.context("test")  # every variant's hits count on it

    def variants(self) -> None:
        """The inference-only variants: metrics and test hits at each knob setting."""
        self.variant_results = []
        for knobs in self.variant_knobs:
            vmetrics, vlists = evaluate_variant(
                self.spec, self.data, self.scorer, self.book, self.metrics, knobs, self.ks
            )
            vhits = hits_per_user(self.spec, self.test_ctx, *vlists["test"])
            self.variant_results.append(
                {"knobs": knobs, "metrics": vmetrics, "records": {HITS_RECORD: vhits}}
            )

    def save(self) -> None:
        """The result, and the artifacts when an artifact directory is given."""
        self.result = TrialResult(
            metrics=self.metrics,
            cost=self._cost(),
            history=self.history.to_dict(),
            base_model=self.base_id,
            variants=self.variant_results,
            backbone=dict(self.model.backbone_info),
            hits=hits_per_user(self.spec, self.test_ctx, *self.lists["test"]),
        )
        if self.artifact_dir is not None:
            from moo_search.recommender.trial_artifacts import write_artifacts

            self.result.artifact_dir = str(write_artifacts(self.artifact_dir, self))

    # ---- helpers of the stages

    def catalog_scorer(self) -> CatalogScorer:
        """The current model's scorer over the catalog (items and users encoded once)."""
        return CatalogScorer.encode(
            self.model,
            self.item_tokens,
            self.user_tokens,
            self.device,
            self.autocast,
            history=self.user_items,
            new_items=self.spec.fusion,
        )

    def train_data(self) -> Any:
        from moo_search.recommender.task_eval import leave_one_out
        from moo_search.recommender.train.loop import TrainData

        spec, data, split, model = self.spec, self.data, self.data.split, self.model
        feats = data.features / np.maximum(np.linalg.norm(data.features, axis=1)[:, None], 1e-12)
        users = split.train["user"].to_numpy()
        items = split.train["item"].to_numpy()
        clicks = (split.train["rating"].to_numpy() >= split.threshold).astype(np.float32)
        return TrainData(
            users=users,
            items=items,
            clicks=clicks,
            **leave_one_out(data, users, items, clicks),
            user_tokens=self.user_tokens,
            item_tokens=self.item_tokens,
            features=torch.as_tensor(feats, dtype=torch.float32),
            self_information=torch.as_tensor(-np.log2(data.item_pop), dtype=torch.float32),
            neighbours=item_neighbours(spec, data, model),
            hard_negatives=item_hard_negatives(spec, data, model, self.item_tokens, self.device),
            ratings=split.train["rating"].to_numpy().astype(np.float32),
        )

    def _checkpoint(self, step: int) -> None:
        assert self.on_rung is not None
        spec = self.spec
        if self._rung_sample is None:
            self._rung_sample = rung_users(self.data.split, spec.driver.early_stopping.sample_users)
        scorer = self.catalog_scorer()
        metrics = val_metrics(spec, self.data, scorer, self.ks, self._rung_sample)  # comparable
        if any(is_task_metric(o.metric) for o in spec.objectives):
            metrics.update(task_metrics(scorer, self.data.split, "val", **self.task_kw))
        cost = {"seconds": time.perf_counter() - self.t0, "trainable_params": float(self.trainable)}
        self.on_rung(step, {"val": metrics}, cost)  # the costs of spec.RUNG_COSTS

    def _cost(self) -> dict[str, float]:
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if self.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        return {
            "seconds": time.perf_counter() - self.t0,
            "train_seconds": self.history.seconds,
            "train_tokens": float(self.history.train_tokens),
            "encoded_tokens": float(self.model.encoded_tokens),
            "trainable_params": float(self.trainable),
            "peak_mem_mb": float(peak),
        }
