"""The study level: search space, objectives, constraints, driver, budget, storage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from moo_search.registry import OBJECTIVES, PROBLEMS
from moo_search.spec._driver import BudgetConfig, DriverConfig
from moo_search.spec._errors import Located, Strict
from moo_search.spec._paths import set_path

__all__ = [
    "DEFAULT_OBJECTIVE",
    "Constraint",
    "Dimension",
    "Objective",
    "StudySpec",
    "objective_problem",
    "suggestion_order",
]

DEFAULT_OBJECTIVE = "run_trial"

_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_@/.\-]+)\s*(?P<op>>=|<=)\s*(?P<value>\S+)\s*$"
)

MAX_NAME_BYTES = 200
"""A study name's limit: it names a directory (255 bytes on ext4 and most file systems),
with room for the suffixes written beside it."""


class Dimension(Strict):
    """One searched knob: ``{float: [low, high]}``, ``{int: [low, high]}`` or
    ``{categorical: [a, b, ...]}``, optionally ``log``, ``step`` and ``when``."""

    kind: Literal["float", "int", "categorical"] = Field(
        description="What the knob takes: a float or an int in [low, high], or one of choices."
    )
    low: float | None = Field(None, description="Lowest value (float and int dimensions).")
    high: float | None = Field(None, description="Highest value (float and int dimensions).")
    log: bool = Field(False, description="Sample on a log scale (needs low > 0).")
    step: float | None = Field(None, description="Grid step between low and high.")
    choices: list[Any] | None = Field(None, description="The values a categorical knob takes.")
    when: dict[str, list[Any]] | None = Field(
        None,
        description=(
            "Suggested only when each named (earlier) search dimension took one of the listed "
            "values (e.g. the recommender's adapter.r when adapter.type is lora or dora): a "
            "trial carries no value for a knob that does not act in it."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, v: Any) -> Any:
        if not isinstance(v, dict) or "kind" in v:
            return v
        kinds = [k for k in ("float", "int", "categorical") if k in v]
        if len(kinds) != 1:
            raise ValueError(
                "a dimension is {float: [low, high]}, {int: [low, high]} or "
                f"{{categorical: [a, b, ...]}} (optional log/step), got {v!r}"
            )
        kind = kinds[0]
        rest = {k: val for k, val in v.items() if k != kind}
        if kind == "categorical":
            return {"kind": kind, "choices": v[kind], **rest}
        bounds = v[kind]
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise ValueError(f"{kind}: expected [low, high], got {bounds!r}")
        return {"kind": kind, "low": bounds[0], "high": bounds[1], **rest}

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError("categorical: needs a non-empty list of choices")
            if self.log or self.step is not None:
                raise ValueError("categorical: log/step do not apply")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.kind}: needs low and high")
        if self.low > self.high:
            raise ValueError(
                f"{self.kind}: low must be <= high, got low={self.low} > high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"{self.kind}: log scale needs low > 0, got low={self.low}")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"int: bounds must be integers, got [{self.low}, {self.high}]")
        return self

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = self._to_yaml()
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can propose (a choice, or within
        [low, high]; an int dimension's value an integer)."""
        if self.kind == "categorical":
            return value in (self.choices or [])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and float(value) != int(value):
            return False
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def shown(self) -> str:
        """The dimension as a reader wrote it: ``[3e-05, 0.001]`` or ``one of [...]``."""
        if self.kind == "categorical":
            return f"one of {self.choices}"
        return f"[{self.low:g}, {self.high:g}]"

    def active(self, params: dict[str, Any]) -> bool:
        """Whether this dimension acts, given the values suggested before it."""
        return not self.when or all(params.get(p) in vals for p, vals in self.when.items())

    def _to_yaml(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"categorical": list(self.choices or [])}
        out: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.kind == "int":
            out[self.kind] = [int(self.low or 0), int(self.high or 0)]
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


class Objective(Strict):
    """One objective the driver optimises, on validation."""

    metric: str = Field(
        description="A metric the objective reports, e.g. f1 (zdt1) or precision@10 (the "
        "recommender)."
    )
    direction: Literal["minimize", "maximize"] = Field(description="Which way is better.")
    split: Literal["val"] = Field("val", description="The driver optimises validation metrics.")
    direction_override: bool = Field(
        False,
        description="Optimise the metric against its registered direction on purpose (e.g. "
        "maximise an error); without it such an objective is refused as a likely slip.",
    )

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, v: Any) -> Any:
        if v not in ("minimize", "maximize"):
            raise ValueError(f"must be 'minimize' or 'maximize', got {v!r}")
        return v


class Constraint(Strict):
    """A feasibility bound, written ``"precision@10 >= 0.02"``."""

    metric: str = Field(description="The metric bounded (validation).")
    op: Literal[">=", "<="] = Field(description="The bound's direction.")
    value: float = Field(description="The bound.")

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT_RE.match(str(text))
        if not m:
            raise ValueError(
                f"expected '<metric> >= <number>' or '<metric> <= <number>', got {text!r}"
            )
        try:
            value = float(m["value"])
        except ValueError:
            raise ValueError(
                f"threshold must be a number, got {m['value']!r} in {text!r}"
            ) from None
        return cls(metric=m["metric"], op=m["op"], value=value)  # type: ignore[arg-type]

    def violation(self, observed: float) -> float:
        """Optuna convention: <= 0 means satisfied."""
        return self.value - observed if self.op == ">=" else observed - self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def objective_problem(name: str) -> str:
    """What is wrong with ``name`` as a spec's ``objective`` ("" when nothing: a registered
    objective, a problem, or ``package.module:function``)."""
    if re.match(r"^[\w.]+:[\w.]+$", name) or name in PROBLEMS or name in OBJECTIVES:
        return ""
    return (
        f"{OBJECTIVES.unknown_message(name)}; an objective is also one of the problems "
        f"({', '.join(PROBLEMS.names())}) or 'package.module:function'"
    )


class StudySpec(Strict):
    name: str = Field(
        "study", min_length=1, description="The study's name (its storage key and report folder)."
    )
    description: str = Field("", description="Free text shown on the dashboard.")
    seed: int = Field(0, description="Seed of the trials' own randomness (data split, training).")
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules imported before the spec is validated, in every process "
        "of the study (workers too): where a study's own datasets, metrics, backbones, "
        "objectives ... are registered.",
    )
    objective: str = Field(
        DEFAULT_OBJECTIVE,
        description="run_trial (default: the language-model recommender), another registered "
        "objective, a built-in problem (zdt1, zdt2, dtlz2) or package.module:function.",
    )
    problem: dict[str, int] = Field(
        default_factory=dict, description="Built-in problem options, e.g. {n_var: 10, n_obj: 3}."
    )
    search_space: dict[str, Dimension] = Field(
        default_factory=dict,
        description="Dotted paths into the trial config -> the dimension searched there.",
    )
    objectives: list[Objective] = Field(
        default_factory=list, description="What the driver optimises (at least one)."
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description="Bounds a feasible trial meets on validation."
    )
    driver: DriverConfig = Field(
        default_factory=DriverConfig, description="The optimiser: library, algorithm, seed."
    )
    budget: BudgetConfig = Field(
        default_factory=BudgetConfig, description="How many trials, how long, how many failures."
    )
    storage: str | None = Field(
        None, description="Optuna storage URL (default: SQLite in out_dir)."
    )
    out_dir: str | None = Field(None, description="Study directory (default: reports/<name>).")
    mlflow: str | None = Field(
        None,
        description="MLflow tracking URI: `run` also logs each trial as an MLflow run under "
        "one parent run for the study (off when unset; the study's storage stays the record).",
    )
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Named param sets run first, after the base config; each is a variant "
        "of the base config (a searched path it does not set keeps the base's value).",
    )

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError(f"expected a list of strings like 'precision@10 >= 0.02', got {v!r}")
        return [Constraint.parse(c) if isinstance(c, str) else c for c in v]

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, v: str) -> str:
        if "/" in v or "\\" in v or v in (".", "..") or "\0" in v:
            raise ValueError(
                "a study name is one path component (it names reports/<name>/): no '/' or "
                f"'\\', not '.' or '..'; got {v!r} (out_dir places the study elsewhere)"
            )
        if len(v.encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"at most {MAX_NAME_BYTES} bytes (a file name's limit on common file systems), "
                f"got {len(v.encode())}"
            )
        return v

    @field_validator("objective")
    @classmethod
    def _objective_ref(cls, v: str) -> str:
        problem = objective_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    # ---- derived views -------------------------------------------------------------

    @property
    def study_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("reports") / self.name

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{(self.study_dir / 'study.db').as_posix()}"

    def with_params(self, params: dict[str, Any]) -> StudySpec:
        """A copy with the dotted-path ``params`` applied and re-validated."""
        import copy

        before = self.to_dict(redact=False)
        raw = copy.deepcopy(before)
        for path, value in params.items():
            set_path(raw, path.split("."), value, full=path)
        type(self).reconcile(before, raw, set(params))
        from moo_search.spec._load import spec_from_dict

        return spec_from_dict(raw)

    @classmethod
    def reconcile(cls, before: dict[str, Any], after: dict[str, Any], given: set[str]) -> None:
        """Adjust ``after`` (plain data, in place), which is ``before`` with the ``given``
        dotted paths set (by ``--set`` or a trial's parameters), before it is validated: an
        objective whose spec switches between entries with knobs of their own drops the knobs
        of the entry it left. The engine's spec has nothing to adjust."""

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain data (what spec.yaml, the study and every trial record hold); a password in
        ``storage`` is replaced by ``***`` unless ``redact=False`` (in-process copies only)."""
        out = self.model_dump(mode="json")
        from moo_search.redact import redact_url

        for key in ("storage", "mlflow") if redact else ():
            out[key] = redact_url(out[key]) if out.get(key) else out.get(key)
        out["search_space"] = {k: d.to_yaml() for k, d in self.search_space.items()}
        out["constraints"] = [str(c) for c in self.constraints]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    # ---- cross-field validation ----------------------------------------------------

    def _check_conditions(self) -> None:
        for path, dim in self.search_space.items():
            _check_condition(self.search_space, path, dim)

    @model_validator(mode="after")
    def _study_checks(self) -> StudySpec:
        self._check_conditions()
        if not self.objectives:
            raise Located(("objectives",), "at least one objective is required, got []")
        names = [o.metric for o in self.objectives]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise Located(("objectives",), f"each metric may appear once, got duplicates {dupes}")
        if self.driver.reference_point is not None and len(self.driver.reference_point) != len(
            self.objectives
        ):
            raise Located(
                ("driver", "reference_point"),
                f"needs one value per objective ({len(self.objectives)}), "
                f"got {len(self.driver.reference_point)}",
            )
        if self.driver.algorithm == "nsga3" and len(self.objectives) < 2:
            raise Located(("driver", "algorithm"), "nsga3 needs at least 2 objectives")
        return self


def _check_condition(space: dict[str, Dimension], path: str, dim: Dimension) -> None:
    """A dimension's ``when`` names other, unconditional dimensions, with values they can
    take (so every dimension it depends on is suggested first, whatever the key order)."""
    for cond, values in (dim.when or {}).items():
        other = space.get(cond)
        if other is None or cond == path or other.when:
            raise Located(
                ("search_space", path, "when"),
                f"{cond!r} must be another search dimension without a 'when' of its own (it "
                f"decides whether {path} is suggested); the unconditional dimensions are "
                f"{[p for p, d in space.items() if not d.when]}",
            )
        if other.kind == "categorical":
            bad = [v for v in values if v not in (other.choices or [])]
            if bad:
                raise Located(
                    ("search_space", path, "when", cond),
                    f"{bad} are not choices of {cond} (its choices: {other.choices})",
                )


def suggestion_order(space: dict[str, Dimension]) -> list[str]:
    """The dimensions in the order they are suggested: the unconditional ones (in the
    spec's order), then those with a ``when`` (which depend only on the first)."""
    return [p for p, d in space.items() if not d.when] + [p for p, d in space.items() if d.when]
