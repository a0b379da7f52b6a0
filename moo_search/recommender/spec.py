"""The recommender's study spec: the engine's :class:`~moo_search.spec.StudySpec` plus the trial
config (``data``, ``model``, ``adapter``, ``fusion``, ``loss``, ``train``, ``rerank``,
``eval``; :mod:`moo_search.recommender.config`).

Search dimensions are dotted paths into the trial config, and every value a dimension can take is
checked on its section here, so no trial fails later for a spec error. Objective, constraint and
early-stopping metric names are checked against the metric registry.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from moo_search.recommender.config import (
    TRIAL_SECTIONS,
    AdapterConfig,
    DataConfig,
    EvalConfig,
    FusionConfig,
    LossConfig,
    ModelConfig,
    RerankConfig,
    TrainConfig,
)
from moo_search.recommender.config._compat import drop_switched_knobs, move_old_spec_keys
from moo_search.recommender.metrics import is_known_metric, metric_direction, metric_needs
from moo_search.spec import Dimension, Objective, StudySpec
from moo_search.spec._errors import Located, closest, model_in
from moo_search.spec._paths import set_path

__all__ = ["RUNG_COSTS", "RecommenderSpec", "load_recommender_spec", "recommender_spec"]

_K_RE = re.compile(r"@(\d+)$")
RUNG_COSTS = ("cost/seconds", "cost/trainable_params")
"""The cost metrics an early-stopping rung measures (the others exist only at the end)."""


class RecommenderSpec(StudySpec):
    """A study of the default objective: the study sections plus one trial config."""

    data: DataConfig = Field(
        default_factory=DataConfig,
        description="Where the interactions come from and how they are split.",
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="The language model turned tower: which, how texts are cut, precision.",
    )
    adapter: AdapterConfig = Field(
        default_factory=AdapterConfig,
        description="The PEFT adapter fine-tuned on the model (type and its knobs).",
    )
    fusion: FusionConfig = Field(
        default_factory=FusionConfig,
        description="How the text tower and the collaborative backbone are fused.",
    )
    loss: LossConfig = Field(
        default_factory=LossConfig,
        description="The training loss: the weight of each term and their settings.",
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="The training loop: learning rates, batch, steps, device.",
    )
    rerank: RerankConfig = Field(
        default_factory=RerankConfig,
        description="Inference-time re-ranking of each list (MMR, popularity penalty).",
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="How lists are evaluated: K and batch size."
    )
    objectives: list[Objective] = Field(
        description="What the driver optimises, on validation (one entry per objective).",
        default_factory=lambda: [
            Objective(metric="precision@10", direction="maximize"),
            Objective(metric="ild@10", direction="maximize"),
        ],
    )

    def trial_dict(self) -> dict[str, Any]:
        """The trial config part, as plain data."""
        dumped = self.model_dump(mode="json")
        return {k: dumped[k] for k in TRIAL_SECTIONS}

    def requested_ks(self) -> tuple[int, ...]:
        """Every K the objectives, constraints and the early-stopping metric name
        (``precision@10`` -> 10): list metrics are computed at these besides ``eval.k``."""
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        names.append(self.train.early_stop_metric)
        return tuple(sorted({int(m.group(1)) for n in names if (m := _K_RE.search(n))}))

    def with_params(self, params: dict[str, Any]) -> RecommenderSpec:
        out = super().with_params(params)
        assert isinstance(out, RecommenderSpec)
        return out

    @model_validator(mode="before")
    @classmethod
    def _old_keys(cls, data: Any) -> Any:
        return move_old_spec_keys(data)

    @classmethod
    def reconcile(cls, before: dict[str, Any], after: dict[str, Any], given: set[str]) -> None:
        """A switched backbone (``fusion.cf``), adapter type (``adapter.type``) or dataset
        (``data.dataset``) leaves the knobs of the one it replaced behind
        (:func:`drop_switched_knobs`)."""
        drop_switched_knobs(
            move_old_spec_keys(before),
            after,
            given,
            {
                "fusion.cf": _backbone_knobs,
                "adapter.type": _adapter_knobs,
                "data.dataset": _dataset_knobs,
            },
        )

    @model_validator(mode="after")
    def _trial_checks(self) -> RecommenderSpec:
        for i, obj in enumerate(self.objectives):
            if not is_known_metric(obj.metric):
                raise Located(
                    ("objectives", i, "metric"),
                    f"unknown metric {obj.metric!r}; expected e.g. precision@10, ndcg@10, "
                    "ild@10, novelty@10, coverage@10, ctr_auc, cold/recall@10, cost/seconds",
                )
            self._check_objective_meaning(i, obj)
        for i, c in enumerate(self.constraints):
            if not is_known_metric(c.metric):
                raise Located(("constraints", i), f"unknown metric {c.metric!r} in {str(c)!r}")
            self._check_held_out(("constraints", i), c.metric)
        if not is_known_metric(self.train.early_stop_metric):
            raise Located(
                ("train", "early_stop_metric"),
                f"unknown metric {self.train.early_stop_metric!r} (e.g. 'ndcg@10', 'precision@10')",
            )
        self._check_held_out(("train", "early_stop_metric"), self.train.early_stop_metric)
        for path, dim in self.search_space.items():
            _check_dimension_path(path)
            self._check_dimension_values(path, dim)
        if self.driver.early_stopping.enabled:
            unmeasured = [
                o.metric
                for o in self.objectives
                if o.metric.startswith("cost/") and o.metric not in RUNG_COSTS
            ]
            if unmeasured:
                raise Located(
                    ("driver", "early_stopping"),
                    f"a rung cannot measure the objective(s) {unmeasured} before the trial "
                    f"ends (it measures {', '.join(RUNG_COSTS)}); turn early stopping off or "
                    "use one of those",
                )
        return self

    def _check_objective_meaning(self, i: int, obj: Objective) -> None:
        """An objective that its data protocol can define, in its metric's direction (or
        against it with ``direction_override``)."""
        self._check_held_out(("objectives", i, "metric"), obj.metric)
        registered = metric_direction(obj.metric)
        if obj.direction != registered and not obj.direction_override:
            raise Located(
                ("objectives", i, "direction"),
                f"{obj.metric} is better {'lower' if registered == 'minimize' else 'higher'} "
                f"(registered direction {registered!r}), got {obj.direction!r}; set "
                f"direction_override: true on this objective to {obj.direction} it on purpose",
            )

    def _check_held_out(self, where: tuple[str | int, ...], metric: str) -> None:
        if "held_out_items" in metric_needs(metric) and not self.data.split.cold_items:
            raise Located(
                where,
                f"{metric} is measured on held-out new items, and this study holds none out; "
                "set data.split.cold_items (e.g. 0.2) or choose a metric without "
                "cold_item/ or mixed/",
            )

    def _check_dimension_values(self, path: str, dim: Dimension) -> None:
        """Every value the dimension can take must be valid for the field it points at."""
        section, *_rest = path.split(".")
        current = getattr(self, section)
        if not isinstance(current, BaseModel):
            return  # a top-level value (seed): its type is all there is to check
        # the values a trial with this dimension has: its `when` conditions hold (the first
        # allowed value of each), and a switched entry left its knobs behind
        when = {p: v[0] for p, v in (dim.when or {}).items() if p.startswith(section + ".") and v}
        for value in _values_to_check(dim):
            before = {section: current.model_dump(by_alias=True)}
            after = copy.deepcopy(before)
            given = {path, *when}
            for cond, first in when.items():
                set_path(after, cond.split("."), first, full=cond)
            set_path(after, path.split("."), value, full=path)
            type(self).reconcile(before, after, given)
            raw = after[section]
            try:
                type(current).model_validate(raw)
            except ValidationError as e:
                first = e.errors(include_url=False)[0]
                ctx_err = (first.get("ctx") or {}).get("error")
                why = str(ctx_err) if ctx_err is not None else first["msg"]
                raise Located(
                    ("search_space", path),
                    f"value {value!r} is not valid for {path}: {why.removeprefix('Value error, ')}",
                ) from None


def _knob_names(model: Any) -> set[str]:
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    return set(fields) | {f.alias for f in fields.values() if f.alias}


def _backbone_knobs(name: Any) -> tuple[str, set[str]]:
    from moo_search.recommender.registries import BACKBONES

    entry = BACKBONES.get(name) if isinstance(name, str) and name in BACKBONES else None
    return "fusion.cf_params", _knob_names(getattr(entry, "params", None))


def _dataset_knobs(name: Any) -> tuple[str, set[str]]:
    from moo_search.recommender.registries import DATASETS

    entry = DATASETS.get(name) if isinstance(name, str) and name in DATASETS else None
    return "data.params", _knob_names(getattr(entry, "params", None))


def _adapter_knobs(name: Any) -> tuple[str, set[str]]:
    from moo_search.recommender.config._adapter import switch_keeps

    return "adapter", switch_keeps(name)


def _values_to_check(dim: Dimension) -> list[Any]:
    if dim.kind == "categorical":
        return list(dim.choices or [])
    lo, hi = float(dim.low or 0), float(dim.high or 0)  # set: a numeric dimension has both
    if dim.kind == "int":
        return [int(lo), int(hi)]
    return [lo, hi]  # a field's domain is an interval: the ends decide


def _open_key(model: type[BaseModel], key: str) -> bool:
    """Whether ``model`` takes keys besides its fields (``loss.weights``: a registered term's);
    its own validator checks which, when the dimension's values are checked."""
    return model.model_config.get("extra") == "allow"


def _check_dimension_path(path: str) -> None:
    parts = path.split(".")
    model: type[BaseModel] = RecommenderSpec
    if parts[0] not in TRIAL_SECTIONS:
        hint = closest(parts[0], TRIAL_SECTIONS)
        raise Located(
            ("search_space", path),
            f"a dimension must point into the trial config ({', '.join(TRIAL_SECTIONS)}); "
            f"{parts[0]!r} is not one of them{hint}",
        )
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields and i == len(parts) - 1 and _open_key(model, part):
            return  # a key the section takes besides its fields (a plugin's loss term)
        if part not in fields:
            hint = closest(part, list(fields))
            where = ".".join(parts[:i]) or "the spec"
            raise Located(("search_space", path), f"{where} has no field {part!r}{hint}")
        annotation = fields[part].annotation
        if i == len(parts) - 2 and getattr(annotation, "__origin__", None) is dict:
            return  # a knob of a dict section (fusion.cf_params.<knob>): checked by its values
        sub = model_in(annotation)
        if i < len(parts) - 1:
            if sub is None:
                raise Located(
                    ("search_space", path), f"{'.'.join(parts[: i + 1])} is a value, not a section"
                )
            model = sub
        elif sub is not None:
            raise Located(
                ("search_space", path), f"{path} is a section; point at one of its values"
            )


def recommender_spec(
    raw: dict[str, Any], *, source: str = "", stored: bool = False
) -> RecommenderSpec:
    """Validate plain data (a spec or a trial config) into a :class:`RecommenderSpec`;
    ``stored``: a config a study or a bundle recorded (an adapter knob its type does not own,
    written there before each type owned its knobs, is dropped rather than refused).

    Raises:
        SpecError: a field is invalid, or the data names another objective.
    """
    from moo_search.errors import SpecError
    from moo_search.spec import DEFAULT_OBJECTIVE, spec_from_dict

    if stored and isinstance(raw, dict) and isinstance(raw.get("adapter"), dict):
        from moo_search.recommender.config._adapter import foreign_knobs_dropped

        raw = {**raw, "adapter": foreign_knobs_dropped(raw["adapter"])}
    spec = spec_from_dict(raw, source=source)
    if not isinstance(spec, RecommenderSpec):
        raise SpecError(
            f"{source or 'spec'}: the recommender runs the default objective "
            f"({DEFAULT_OBJECTIVE}); this spec names {spec.objective!r}",
            field="objective",
        )
    return spec


def load_recommender_spec(
    path: str | Path, overrides: list[str] | None = None, *, command: str = "run_trial"
) -> RecommenderSpec:
    """:func:`moo_search.spec.load_spec` for what only the recommender runs (``command``)."""
    from moo_search.errors import MooSearchError
    from moo_search.spec import load_spec

    spec = load_spec(path, overrides)
    if not isinstance(spec, RecommenderSpec):
        raise MooSearchError(
            f"{path}: `{command}` runs the default objective; this spec uses {spec.objective!r}"
        )
    return spec
