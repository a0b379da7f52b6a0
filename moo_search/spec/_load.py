"""Loading a spec: YAML file or plain data, overrides applied, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from moo_search.errors import SpecError
from moo_search.registry import OBJECTIVES, PROBLEMS, load_plugins
from moo_search.spec._errors import format_validation_error
from moo_search.spec._paths import apply_overrides, parse_override
from moo_search.spec._study import DEFAULT_OBJECTIVE, StudySpec, objective_problem

__all__ = ["load_spec", "spec_class", "spec_from_dict"]


def spec_class(objective: object) -> type[StudySpec]:
    """The spec class of a study of ``objective``: a registered objective's own (the
    recommender's adds its trial config), else the engine's :class:`StudySpec` (built-in
    problems, ``package.module:function``, and an unknown name, which it then refuses)."""
    if not isinstance(objective, str) or ":" in objective or objective in PROBLEMS:
        return StudySpec
    if objective in OBJECTIVES:
        cls = OBJECTIVES.get(objective).spec_class
        if isinstance(cls, type) and issubclass(cls, StudySpec):
            return cls
    return StudySpec


def _check_objective(objective: object, source: str) -> None:
    """An objective name nothing registers is refused on its own, before its spec class is
    chosen (its sections would otherwise each be reported as unknown keys)."""
    problem = objective_problem(objective) if isinstance(objective, str) else ""
    if problem:
        e = SpecError(f"{source or 'spec'}: invalid spec\n  objective: {problem}")
        e.field = "objective"  # (the message names the file first, as a validation error's)
        raise e


def spec_from_dict(
    raw: dict[str, Any], *, source: str = "", overrides: list[str] | None = None
) -> StudySpec:
    """Validate plain data, with ``overrides`` (``["train.lr=3e-4", ...]``) applied, into a
    :class:`StudySpec` (raises :class:`SpecError`)."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source or 'spec'}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    given = {parse_override(text)[0] for text in overrides or []}
    before, raw = raw, apply_overrides(raw, overrides)
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise SpecError(
            f"plugins: expected a list of module names (e.g. [my_study.registrations]), "
            f"got {plugins!r}",
            field="plugins",
        )
    load_plugins(plugins)
    _check_objective(raw.get("objective", DEFAULT_OBJECTIVE), source)
    cls = spec_class(raw.get("objective", DEFAULT_OBJECTIVE))
    cls.reconcile(before, raw, given)
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise format_validation_error(e, source, cls) from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Load, override and validate a study spec.

    Args:
        path: YAML file.
        overrides: ``["train.lr=3e-4", ...]`` applied before validation.

    Raises:
        SpecError: the file is missing or not YAML, or a field is invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}", field=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a text file (expected a YAML study spec)") from None
    except OSError as e:
        raise SpecError(f"{p}: cannot read the spec: {e.strerror or e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    if raw is None:
        raise SpecError(
            f"{p}: the spec file is empty; write at least `name:` and `objectives:` "
            "(studies/quickstart.yaml is a complete example)"
        )
    if not isinstance(raw, dict):
        raise SpecError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    return spec_from_dict(raw, source=str(p), overrides=overrides)
