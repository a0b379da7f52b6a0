"""Spec error text: the dotted field, the rule, the value found, the closest valid key."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from moo_search.errors import SpecError

__all__ = ["Located", "Strict", "closest", "format_validation_error", "model_in"]


class Located(ValueError):
    """A cross-field error that knows the dotted location it belongs to."""

    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        self.loc = loc
        super().__init__(message)


class Strict(BaseModel):
    """Every spec section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (``X``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def closest(word: str, options: Any) -> str:
    """``"; did you mean 'lr'?"`` for the closest of ``options``, or ``""``."""
    hint = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the model found at ``loc`` (for typo suggestions)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = model_in(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def format_validation_error(err: ValidationError, source: str, root: type[BaseModel]) -> SpecError:
    """One :class:`SpecError` for a pydantic error: a line per problem, each starting with
    the dotted field; ``field`` is the first one."""
    lines: list[str] = []
    first_field: str | None = None
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, Located):
            loc = loc + ctx_err.loc
        field = ".".join(str(p) for p in loc) or "(top level)"
        first_field = first_field or field
        if e["type"] == "extra_forbidden":
            valid = _fields_at(root, loc[:-1])
            hint = closest(str(loc[-1]), valid)
            msg = f"unknown key {loc[-1]!r}{hint} (valid keys: {', '.join(sorted(valid))})"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = str(ctx_err) if ctx_err is not None else e["msg"]
            msg = msg.removeprefix("Value error, ")
            if "input" in e and e["type"] not in ("value_error", "assertion_error"):
                msg = f"{msg}, got {e['input']!r}"
        lines.append(f"{field}: {msg}")
    where = f"{source}: " if source else ""
    text = where + ("invalid spec\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])
    spec_err = SpecError(text)
    spec_err.field = first_field
    return spec_err
