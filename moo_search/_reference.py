"""The docs site's reference pages, generated from the code so they cannot drift: the study
spec from the pydantic models (every field, type, default, help), the CLI from its parser, the
registries' built-in entries from the registries (``make docs`` writes them; the test suite
checks that nothing is left without help)."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = [
    "FieldDoc",
    "cli_reference",
    "spec_fields",
    "spec_reference",
    "undocumented_fields",
    "undocumented_flags",
    "write_reference",
]


@dataclass(frozen=True)
class FieldDoc:
    """One field of the spec: its dotted path, type, default and help text."""

    path: str
    type: str
    default: str
    help: str


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    out = []
    for t in [annotation, *typing.get_args(annotation)]:
        for u in [t, *typing.get_args(t)]:
            if isinstance(u, type) and issubclass(u, BaseModel) and u not in out:
                out.append(u)
    return out


def _type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    for junk in ("typing.", "moo_search.spec._study.", "moo_search.recommender.config."):
        text = text.replace(junk, "")
    return text.replace("NoneType", "None")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        d = field.default
        return "" if isinstance(d, BaseModel) else repr(d)
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        return "(section)" if isinstance(value, BaseModel) else repr(value)
    return "(required)"


def spec_fields(model: type[BaseModel], prefix: str = "") -> list[FieldDoc]:
    """Every field of ``model`` and of the models it holds, depth first, by dotted path. A
    field that holds a model takes that model's docstring as help where it has none."""
    out: list[FieldDoc] = [  # keys a registry defines (loss.weights: one per loss term)
        FieldDoc(f"{prefix}{name}", kind, default, text)
        for name, kind, default, text in getattr(model, "registered_fields", list)()
    ]
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _models_in(field.annotation)
        text = field.description or ""
        if not text and nested:
            text = (nested[0].__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out.append(FieldDoc(path, _type_name(field.annotation), _default(field), text))
        for sub in nested:
            if sub is not model:
                out += spec_fields(sub, f"{path}.")
    return out


def undocumented_fields(model: type[BaseModel]) -> list[str]:
    """Paths of the spec's fields that have no help text."""
    return [f.path for f in spec_fields(model) if not f.help.strip()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def spec_reference() -> str:
    """The study spec page: one table per section."""
    from moo_search.recommender.spec import RecommenderSpec

    rows = spec_fields(RecommenderSpec)
    lines = [
        "# The study spec",
        "",
        "Generated from the pydantic models (`moo_search.spec`, `moo_search.recommender.config`)"
        " by `make docs`: every field a spec may set, its type, default and meaning. A study of"
        " another objective has the study sections only.",
        "",
    ]
    nested = {f.path.split(".")[0] for f in rows if "." in f.path}
    trial = {"data", "model", "adapter", "fusion", "loss", "train", "rerank", "eval"}
    sections: dict[str, list[FieldDoc]] = {"the study": []}
    for f in rows:
        top = f.path.split(".")[0]
        key = f"`{top}`" if top in nested and top in trial else "the study"
        sections.setdefault(key, []).append(f)
    for name, fields in sections.items():
        lines += [f"## {name}", "", "| field | type | default | meaning |", "|---|---|---|---|"]
        lines += [
            f"| `{f.path}` | `{_cell(f.type)}` | `{_cell(f.default)}` | {_cell(f.help)} |"
            for f in fields
        ]
        lines.append("")
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def undocumented_flags() -> list[str]:
    """``command --flag`` of every CLI argument that has no help text."""
    from moo_search.cli import build_parser

    parser = build_parser()
    out = [f"{'/'.join(a.option_strings) or a.dest}" for a in _flags(parser) if not a.help]
    for name, sub in _subcommands(parser).items():
        out += [f"{name} {'/'.join(a.option_strings) or a.dest}" for a in _flags(sub) if not a.help]
    return out


def cli_reference() -> str:
    """The CLI page: every command and its arguments, from the parser."""
    from moo_search.cli import build_parser

    parser = build_parser()
    lines = ["# The command line", "", "Generated from `moo_search.cli.build_parser`.", ""]
    helps = {
        a.dest: a.help
        for act in parser._actions
        if isinstance(act, argparse._SubParsersAction)
        for a in act._choices_actions
    }
    for name, sub in _subcommands(parser).items():
        lines += [f"## `moo-search {name}`", "", helps.get(name) or sub.description or "", ""]
        lines += ["| argument | default | meaning |", "|---|---|---|"]
        for a in _flags(sub):
            flag = ", ".join(a.option_strings) or a.dest.upper()
            default = "" if a.default in (None, False, argparse.SUPPRESS) else repr(a.default)
            lines.append(f"| `{flag}` | {_cell(default)} | {_cell(a.help or '')} |")
        lines.append("")
    return "\n".join(lines)


def registries_reference() -> str:
    """The registries page: every kind a spec may name and its built-in entries."""
    from moo_search import registry
    from moo_search.recommender import registries

    kinds: dict[str, registry.Registry[Any]] = {
        "datasets (data.dataset)": registries.DATASETS,
        "adapters (adapter.type)": registries.ADAPTERS,
        "backbones (fusion.cf)": registries.BACKBONES,
        "model families (model.tiny.family, detected from a config)": registries.FAMILIES,
        "metrics (objectives, constraints)": registries.METRICS,
        "loss terms (loss.weights)": registries.LOSS_TERMS,
        "baselines": registries.BASELINES,
        "drivers (driver.backend)": registry.DRIVERS,
        "objectives (objective)": registry.OBJECTIVES,
        "problems (objective)": registry.PROBLEMS,
    }
    lines = ["# Registries", "", "Generated from the registries: what is built in.", ""]
    for title, reg in kinds.items():
        lines += [f"## {title}", ""]
        for name, entry in reg.items():
            doc = getattr(entry, "description", "") or (
                (getattr(entry, "__doc__", "") or "").strip().split("\n")[0]
                if isinstance(entry, types.FunctionType)
                else ""
            )
            lines.append(f"- `{name}`" + (f": {doc}" if doc else "") + _knobs(entry))
        lines.append("")
    return "\n".join(lines)


def _knobs(entry: Any) -> str:
    """An entry's own knobs, from the models it declares (``knobs``, ``params``), with their
    defaults: `` — knobs: `r` = 8, `alpha` = 16.0``."""
    fields = {}
    for attr in ("knobs", "params"):
        model = getattr(entry, attr, None)
        if isinstance(model, type) and hasattr(model, "model_fields"):
            fields.update({f.alias or n: f.default for n, f in model.model_fields.items()})
    if not fields:
        return ""
    return " — knobs: " + ", ".join(f"`{k}` = {v!r}" for k, v in fields.items())


def write_reference(out: Path) -> list[Path]:
    """Write the generated pages under ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "spec.md": spec_reference(),
        "cli.md": cli_reference(),
        "registries.md": registries_reference(),
    }
    written = []
    for name, text in pages.items():
        path = out / name
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written
