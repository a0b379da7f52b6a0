"""Every value a caller hands a loaded bundle, checked all the way down: the Python API
(:class:`ExportedRecommender`) and the served one (``pyfunc``) refuse the same things with the
same :class:`ExportError`, naming the field and what it holds."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from moo_search.errors import ExportError

__all__ = ["check_id", "check_k", "check_new_items", "check_new_user", "shown"]

LIST_FIELDS = ("genres",)  # item fields that are lists of strings; every other is one value


def shown(v: Any, width: int = 60) -> str:
    """A value as the caller wrote it, cut to ``width`` characters (never a deep repr)."""
    try:
        text = repr(v)
    except RecursionError:
        text = f"<a {type(v).__name__} nested too deep>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _scalar(v: Any) -> bool:
    """A string, an integer or a finite number (JSON's scalars, booleans and null aside)."""
    if isinstance(v, bool) or v is None:
        return False
    if isinstance(v, str | numbers.Integral):
        return True
    return isinstance(v, numbers.Real) and math.isfinite(float(v))


def check_id(v: Any, what: str) -> str:
    """An item or user id: a non-empty string or an integer (as the data file wrote it)."""
    if isinstance(v, bool) or not isinstance(v, str | numbers.Integral) or str(v) == "":
        raise ExportError(f"{what} must be a non-empty string or integer id, got {shown(v)}")
    return str(v)


def check_k(k: Any, what: str = "k") -> int:
    """A list length: a positive integer (not a boolean, not 2.7)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or int(k) < 1:
        raise ExportError(f"{what} must be a positive integer, got {shown(k)}")
    return int(k)


def check_new_items(items: Any) -> list[dict[str, Any]]:
    """New item records: a list of objects, each with an ``id`` and the ``data.item_text``
    fields as plain values (``genres`` a list of strings). Returns them with string ids."""
    if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
        raise ExportError(
            'new items: expected a list of objects such as [{"id": "n1", "title": "..."}], '
            f"got {shown(items)}"
        )
    out = []
    for n, item in enumerate(items):
        record = {"id": check_id(item.get("id"), f"new items: item {n}: 'id'")}
        for key, v in item.items():
            if key == "id":
                continue
            if key in LIST_FIELDS:
                if isinstance(v, str):
                    v = [g for g in v.split("|") if g]
                if v is not None and (not isinstance(v, list) or not all(map(_scalar, v))):
                    raise ExportError(
                        f"new items: item {n} ({record['id']}): {key!r} must be a list of "
                        f"strings, got {shown(v)}"
                    )
            elif v is not None and not _scalar(v):
                raise ExportError(
                    f"new items: item {n} ({record['id']}): {key!r} must be a string or "
                    f"number, got {shown(v)}"
                )
            record[str(key)] = v
        out.append(record)
    return out


def check_new_user(user: Mapping[str, Any]) -> dict[str, Any]:
    """A new user: ``{"history": [item ids], "attributes": {name: plain value}}``."""
    unknown = [k for k in user if k not in ("attributes", "history")]
    if unknown:
        raise ExportError(
            f"a new user is {{'attributes': {{...}}, 'history': [item ids]}}; unknown keys {unknown}"
        )
    history = user.get("history") or []
    if not isinstance(history, list | tuple):
        raise ExportError(f"history must be a list of item ids, got {shown(history)}")
    attrs = user.get("attributes") or {}
    if not isinstance(attrs, Mapping):
        raise ExportError(f"attributes must be an object such as {{'age': 30}}, got {shown(attrs)}")
    bad = [k for k, v in attrs.items() if v is not None and not _scalar(v)]
    if bad:
        raise ExportError(
            f"attributes: {bad[0]!r} must be a string or number, got {shown(attrs[bad[0]])}"
        )
    return {
        "history": [check_id(i, f"history item {n}") for n, i in enumerate(history)],
        "attributes": dict(attrs),
    }
