"""mkdocs hook: the reference pages generated from the code before every build
(moo_search._reference: the spec from the pydantic models, the CLI from its parser, the
registries' entries), so they cannot drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def on_pre_build(config: Any, **kwargs: Any) -> None:
    from moo_search._reference import write_reference

    write_reference(Path(config["docs_dir"]) / "reference")
