"""Dotted paths into a spec: ``--set train.lr=3e-4``, ``objectives.0.direction=minimize``."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from moo_search.errors import SpecError

__all__ = ["apply_overrides", "parse_override", "set_path"]


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=3e-4"`` -> ``("train.lr", 0.0003)``; the value is typed like YAML."""
    if "=" not in text:
        raise SpecError(f"--set expects path=value, got {text!r}", field="--set")
    path, _, value = text.partition("=")
    path = path.strip()
    if not path:
        raise SpecError(f"--set expects path=value, got {text!r}", field="--set")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise SpecError(f"value {value!r} is not valid YAML: {e}", field=path) from None
    if isinstance(parsed, str) and re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", parsed):
        parsed = float(parsed)  # YAML 1.1 reads 3e-4 as a string
    return path, parsed


def set_path(raw: dict[str, Any], parts: list[str], value: Any, *, full: str) -> None:
    """Set ``value`` at a dotted path; numeric parts index lists (``objectives.0.direction``)."""
    if parts[0] == "search_space" and len(parts) > 1:
        # keys of search_space contain dots themselves: the rest is one key
        raw.setdefault("search_space", {})[".".join(parts[1:])] = value
        return
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "the spec"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(
                    f"{where} is a list of {len(node)}; {part!r} is not an index into it",
                    field=full,
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            raise SpecError(f"{where} is a value, not a section", field=full)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        set_path(out, path.split("."), value, full=path)
    return out
