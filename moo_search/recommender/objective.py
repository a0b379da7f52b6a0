"""The default objective, ``run_trial``: the language-model recommender as the engine sees it
(:class:`moo_search.objective.Objective`).

A trial is the study's spec with the searched params applied; it fine-tunes, evaluates on
validation and test, and is also served at the inference-only variants of :func:`variant_grid`.
Once per study, the baselines, the reference front and the baselines' per-user test hits are
recorded (:meth:`RecommenderObjective.setup_study`).

This module is the recommender's entry point (``moo_search.plugins`` in ``pyproject.toml``):
the engine imports it as it imports any installed plugin, and where the recommender's
libraries are not installed (``pip install moo-search``, the engine alone) it refuses to load,
naming them, so ``run_trial`` is reported unknown with what to install.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from moo_search.errors import MooSearchError
from moo_search.export import ExportRequest
from moo_search.objective import (
    EvalRequest,
    Evaluation,
    Evaluator,
    GroupEvaluator,
    Objective,
    Panel,
    ReportExtras,
)
from moo_search.recommender.records import (
    BACKBONE_RECORD,
    BASELINE_HITS,
    HITS_RECORD,
    draw_panel,
)
from moo_search.recommender.spec import RecommenderSpec
from moo_search.registry import OBJECTIVES
from moo_search.spec import DEFAULT_OBJECTIVE, StudySpec
from moo_search.study import STUDY_ATTR

REQUIRES = ("torch", "transformers", "peft", "safetensors", "sklearn", "pyarrow", "implicit")
"""The libraries of the ``recommender`` extra a trial imports (MLflow only where a bundle is
registered or served)."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refused it, or a stand-in with no spec
        return False


def _require_libraries() -> None:
    """Refuse to register where a library of :data:`REQUIRES` is missing; checked without
    importing them, so the engine's commands stay light."""
    missing = [m for m in REQUIRES if not _installed(m)]
    if missing:
        raise ModuleNotFoundError(
            f"missing {', '.join(missing)}; pip install 'moo-search[recommender]'",
            name=missing[0],
        )


__all__ = ["FUSION_KNOBS", "FUSION_LEVELS", "REQUIRES", "RecommenderObjective", "variant_grid"]

FUSION_KNOBS = {
    "fusion.alpha": "fusion.serve_alpha",
    "fusion.tail_weight": "fusion.serve_tail_weight",
}
"""Searched fusion weight -> the knob that serves a trained tower at another value."""

FUSION_LEVELS = 4
"""Points of a searched fusion weight's range a fine-tune is also served at."""


def variant_grid(spec: RecommenderSpec) -> list[dict[str, float]]:
    """Inference-only settings a fine-tune (``spec``, its params applied) is also evaluated at:
    the reference front's re-ranking grid, when the study searches a re-ranking knob
    (``rerank.sweep``), then each searched fusion weight at :data:`FUSION_LEVELS`
    points of its range other than the trial's own, one weight at a time
    (``fusion.sweep``; only with a text tower to serve, ``fusion.alpha > 0``)."""
    from moo_search.recommender.reference import RERANK_KNOBS, rerank_grid

    grid: list[dict[str, float]] = []
    if spec.rerank.sweep and any(k in spec.search_space for k in RERANK_KNOBS):
        grid += rerank_grid(spec)
    if spec.fusion.sweep and spec.fusion.alpha > 0:
        own = dict(zip(("fusion.alpha", "fusion.tail_weight"), spec.fusion.serving()))
        for path, knob in FUSION_KNOBS.items():
            dim = spec.search_space.get(path)
            if dim is None or dim.kind != "float" or dim.low is None or dim.high is None:
                continue
            points = np.geomspace if dim.log else np.linspace
            for v in points(float(dim.low), float(dim.high), FUSION_LEVELS):
                if v > 0 and not np.isclose(v, own[path]):
                    grid.append({knob: round(float(v), 6)})
    return grid


def _evaluate(
    params: dict[str, Any], spec: RecommenderSpec, art: Path | None, *, on_rung: Any = None
) -> Evaluation:
    from moo_search.recommender.trial import run_trial

    result = run_trial(spec, artifact_dir=art, variants=variant_grid(spec), on_rung=on_rung)
    return _evaluation(result)


def _evaluation(result: Any) -> Evaluation:
    """A trial's result as the engine records it (its backbone and test hits as records)."""
    records = {BACKBONE_RECORD: result.backbone, HITS_RECORD: result.hits}
    return Evaluation(result.metrics, result.cost, result.variants, records)


def _evaluate_group(requests: list[EvalRequest]) -> list[Evaluation | BaseException]:
    """Trials fine-tuned together over one base (:mod:`moo_search.recommender.trial_fused`)."""
    from moo_search.recommender.trial_fused import TrialRequest, run_trials_together

    results = run_trials_together(
        [TrialRequest(r.spec, r.artifact_dir, variant_grid(r.spec), r.on_rung) for r in requests]
    )
    return [r if isinstance(r, BaseException) else _evaluation(r) for r in results]


class RecommenderObjective(Objective):
    """Fine-tune a PEFT adapter on a text encoder turned recommender; see the module."""

    name = DEFAULT_OBJECTIVE
    spec_class = RecommenderSpec
    searches_spec = True
    keeps_artifacts = True
    has_rungs = True
    exports_model = True
    own_records = frozenset({HITS_RECORD})  # a variant's lists are its own

    def evaluator(self, spec: StudySpec) -> Evaluator:
        return _evaluate

    def fused_evaluator(self, spec: StudySpec) -> tuple[int, GroupEvaluator] | None:
        """``driver.fuse`` trials fine-tuned together over one base; ``auto`` measures the
        shared pass on this device once per worker (:func:`~.trial_fused.choose_fuse`)."""
        assert isinstance(spec, RecommenderSpec)
        k = spec.driver.fuse
        if k == "auto" and spec.budget.n_trials < 2:
            return None  # nothing to fuse: not worth measuring
        if k == "auto":
            from moo_search.recommender.trial_fused import choose_fuse

            k, measured = choose_fuse(spec)
            shown = ", ".join(f"K={n}: {1000 * s:.2f} ms" for n, s in measured.items())
            print(  # (as the study's baselines are shown: once, on stderr)
                f"driver.fuse auto: {k} trial(s) at a time (training time per example: {shown})",
                file=sys.stderr,
                flush=True,
            )
        return None if k == 1 else (int(k), _evaluate_group)

    def base_params(self, spec: StudySpec) -> dict[str, Any]:
        """The base config's value of every searched path (the study's anchor trial); a
        conditional dimension only where the base's values make it act, a path the base
        config does not set (an entry's knob it leaves at its default) not at all. A value
        outside its dimension is a SpecError naming it (never run as something else)."""
        from moo_search.errors import SpecError
        from moo_search.spec import suggestion_order

        raw = spec.to_dict()
        out: dict[str, Any] = {}
        for path in suggestion_order(spec.search_space):
            dim = spec.search_space[path]
            node: Any = raw
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None or not dim.active(out):
                continue
            if not dim.contains(node):  # Optuna would draw another value in its place
                raise SpecError(
                    f"the base config sets {path} = {node!r}, outside its search space "
                    f"{dim.shown()}: the anchor trial (and every enqueued variant of it) would "
                    "run a sampled value instead. Move the base value into the range or widen "
                    "the range",
                    field=f"search_space.{path}",
                )
            if dim.kind == "categorical":
                out[path] = node
            else:
                out[path] = int(node) if dim.kind == "int" else float(node)
        return out

    def steps(self, spec: StudySpec) -> int:
        assert isinstance(spec, RecommenderSpec)
        return spec.train.max_steps

    def metric_direction(self, metric: str) -> str:
        from moo_search.recommender.metrics import metric_direction

        return metric_direction(metric)

    def report_extras(self, study: Any) -> ReportExtras:
        """Each trial's served fusion weights as columns; the config shown; the reference
        front's baselines swept over the re-rankers."""
        return ReportExtras(
            served_knobs={knob: trained for trained, knob in FUSION_KNOBS.items()},
            shows_config=True,
            reference_knobs="re-ranking",
        )

    def report_panel(self, study: Any, data: Any) -> Panel:
        """The front paired with EASE user by user, and ctr_auc against the like-rate
        baseline (:mod:`moo_search.recommender.records`)."""
        return draw_panel(study, data)

    def study_record(self, spec: StudySpec) -> dict[str, Any]:
        """The data section, the source's knobs filled in."""
        assert isinstance(spec, RecommenderSpec)
        return {"data": spec.data.record()}

    def read_study_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A stored data section in today's shape (old keys moved, the source's knobs filled
        in); one that no longer validates is compared as stored."""
        from pydantic import ValidationError

        from moo_search.recommender.config import DataConfig

        try:
            return {**record, "data": DataConfig.model_validate(record.get("data")).record()}
        except (ValidationError, MooSearchError, TypeError, ValueError):
            return record

    def prepare(self, spec: StudySpec) -> None:
        """The dataset into the cache (fetched and verified once, before any worker)."""
        from moo_search.recommender.data import ensure_dataset

        assert isinstance(spec, RecommenderSpec)
        ensure_dataset(spec.data)

    def export(self, request: ExportRequest) -> Path:
        """The sealed bundle of the chosen fine-tune (:mod:`moo_search.recommender.export`)."""
        from moo_search.recommender.export import export_trial

        return export_trial(
            request.target,
            out=request.out,
            trial=request.trial,
            select=request.select,
            where=request.where,
            study_name=request.study_name,
            force=request.force,
        )

    def verify_export(self, out: Path) -> dict[str, Any]:
        from moo_search.recommender.export import verify_export

        return verify_export(out)

    def register_export(self, out: Path, name: str, tracking_uri: str | None) -> Any:
        from moo_search.recommender.export import register_bundle

        return register_bundle(out, name, tracking_uri)

    def load_pyfunc(self, path: str) -> Any:
        from moo_search.recommender.export.pyfunc import _load_pyfunc

        return _load_pyfunc(path)

    def setup_study(self, spec: StudySpec, study: Any) -> None:
        """Baselines, the reference front and the baselines' per-user test hits: each baseline
        is fitted once for the three records."""
        assert isinstance(spec, RecommenderSpec)
        from moo_search.recommender.baselines.paired import baseline_test_hits
        from moo_search.recommender.baselines.ranking import (
            BaselineContext,
            evaluate_baselines,
        )
        from moo_search.recommender.memory import SCORES_BUDGET_GB, budget_gb
        from moo_search.recommender.model.backbones import DENSE_BUDGET_GB
        from moo_search.recommender.prepare import check_metric_needs, prepare_data
        from moo_search.recommender.reference import reference_front

        # a bad MOO_SEARCH_*_GB is one error here, not a failure in every trial
        budget_gb("MOO_SEARCH_SCORES_GB", SCORES_BUDGET_GB)
        budget_gb("MOO_SEARCH_DENSE_GB", DENSE_BUDGET_GB)
        recorded = (STUDY_ATTR.BASELINES, STUDY_ATTR.REFERENCE_FRONT, BASELINE_HITS)
        if all(key in study.user_attrs for key in recorded):
            return  # a resume: the data and its metrics were checked when the study began
        data: Any = prepare_data(spec)
        check_metric_needs(spec, data)  # before any trial: metrics the data cannot define
        ctx: Any = None

        def context() -> Any:
            nonlocal ctx
            if ctx is None:
                ctx = BaselineContext.of(spec, data)
            return ctx

        if STUDY_ATTR.BASELINES not in study.user_attrs:
            print("baselines, once for this study:", file=sys.stderr, flush=True)
            res = evaluate_baselines(
                context(), progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True)
            )
            study.set_user_attr(STUDY_ATTR.BASELINES, res)
        if STUDY_ATTR.REFERENCE_FRONT not in study.user_attrs:
            print("reference front: the baselines through the re-rankers ...", file=sys.stderr)
            c = context()
            study.set_user_attr(STUDY_ATTR.REFERENCE_FRONT, reference_front(spec, data, c))
        if BASELINE_HITS not in study.user_attrs:
            c = context()
            study.set_user_attr(BASELINE_HITS, baseline_test_hits(spec, data, ctx=c))


_require_libraries()
OBJECTIVES.register(DEFAULT_OBJECTIVE, RecommenderObjective())
