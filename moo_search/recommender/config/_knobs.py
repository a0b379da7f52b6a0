"""A registered entry's own knobs: a dataset source, an adapter type or a backbone declares the
pydantic model of its knobs as its ``params`` attribute, and the spec holds their values in a
``params`` dict of its section (``data.params``, ``adapter.params``, ``fusion.cf_params``)."""

from __future__ import annotations

from typing import Any

from moo_search.spec._errors import Located

__all__ = ["check_own_params"]


def check_own_params(entry: Any, params: dict[str, Any], field: str, what: str) -> None:
    """A registered entry's own knobs (``params``, a dict in the spec) against the pydantic
    model the entry declares as its ``params`` attribute; none declared: no knobs allowed."""
    from pydantic import ValidationError

    model = getattr(entry, "params", None)
    if model is None:
        if params:
            raise Located((field,), f"{what} has no knobs of its own, got {sorted(params)}")
        return
    try:
        model.model_validate(params)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise Located(
            (field, *first["loc"]), f"{first['msg']} ({what}, got {first.get('input')!r})"
        ) from None
