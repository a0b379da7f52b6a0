"""``moo-search list``: what a spec may name, kind by kind (the recommender's kinds where it is
installed)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["cmd_list"]


ENGINE_KINDS = ("drivers", "problems", "objectives")
RECOMMENDER_KINDS = ("datasets", "adapters", "backbones", "metrics", "families")


def _recommender_registries(kind: str | None) -> dict[str, Any]:
    """The recommender's registries by kind, where it is installed; where it is not, a line
    saying so (an error when ``kind`` is one of them)."""
    from moo_search.cli._recommender import require_recommender
    from moo_search.errors import MissingLibraries

    if kind in ENGINE_KINDS:
        return {}
    try:
        require_recommender("list")
    except MissingLibraries as e:
        if kind is not None:
            raise MissingLibraries(f"{kind}: {e}") from None
        print(f"{', '.join(RECOMMENDER_KINDS)}: {e}")
        return {}
    from moo_search.recommender import registries

    return {
        "datasets": registries.DATASETS,
        "adapters": registries.ADAPTERS,
        "backbones": registries.BACKBONES,
        "metrics": registries.METRICS,
        "families": registries.FAMILIES,
    }


def cmd_list(args: argparse.Namespace) -> int:
    """What is registered: the names a spec may use for each extension point."""
    from moo_search import registry

    rec = _recommender_registries(args.kind)
    kinds: dict[str, Any] = {
        "datasets": rec.get("datasets"),
        "adapters": rec.get("adapters"),
        "backbones": rec.get("backbones"),
        "drivers": registry.DRIVERS,
        "problems": registry.PROBLEMS,
        "objectives": registry.OBJECTIVES,
        "metrics": rec.get("metrics"),
        "families": rec.get("families"),
    }
    kinds = {k: reg for k, reg in kinds.items() if reg is not None}
    for kind, reg in kinds.items():
        if args.kind and kind != args.kind:
            continue
        if kind == "families":
            _list_families(reg, detail=args.kind == "families")
            continue
        names = reg.names()
        if kind == "drivers":
            names = [f"{n} ({', '.join(reg.get(n).algorithms.names())})" for n in names]
        if kind == "metrics":
            names = [  # a slice-only metric (mixed/new_share@K) is listed with its slice
                f"{n}@K" if reg.get(n).at_k else n for n in names if not reg.get(n).sliced_only
            ]
        print(f"{kind:10s} {reg.field:18s} {', '.join(names)}")
        if kind == "metrics":
            _list_slices(reg)
        if args.kind == kind and kind in _KNOBS_AT:
            _list_knobs(reg, _KNOBS_AT[kind])
    return 0


_KNOBS_AT = {
    "datasets": {"params": "data.params"},
    "backbones": {"params": "fusion.cf_params"},
    "adapters": {"knobs": "adapter", "params": "adapter.params"},
}
"""A kind listed alone -> its entries' knob models (attribute) and where their knobs go."""


def _list_knobs(reg: Any, where: dict[str, str]) -> None:
    """Each entry's own knobs with their defaults (``moo-search list datasets``)."""
    for name in reg.names():
        entry = reg.get(name)
        knobs = []
        for attr, at in where.items():
            model = getattr(entry, attr, None)
            fields = getattr(model, "model_fields", {}) if isinstance(model, type) else {}
            knobs += [
                f"{at}.{f.alias or k}={f.get_default(call_default_factory=True)!r}"
                for k, f in fields.items()
            ]
        print(f"  {name:16s} {', '.join(knobs) if knobs else '(no knobs of its own)'}")


def _list_slices(reg: Any) -> None:
    """The metric slices (``cold_item/``, ``mixed/``, ``tail/``, ``cold/``): what each means
    and which metrics it applies to."""
    from moo_search.recommender.metrics import COLD_ITEM_FAMILIES, COLD_ITEM_TASKS, SLICES

    meaning = {
        "cold": "users with few train items",
        "tail": "relevance outside the popular head",
        "cold_item": "a part's held-out items ranked among themselves (data.split.cold_items)",
        "mixed": "the warm catalog plus the part's held-out items (data.split.cold_items)",
    }
    for where in SLICES:
        if where == "cold_item":
            applies = list(COLD_ITEM_FAMILIES)
        else:
            applies = [n for n, m in reg.items() if where in m.slices]
        shown = ", ".join(f"{where}/{n}@K" for n in applies)
        if where in ("cold_item", "mixed"):  # the business tasks on new items, and on both
            shown += ", " + ", ".join(f"{where}/{n}" for n in COLD_ITEM_TASKS)
        print(f"{'slices':10s} {where + '/':18s} {meaning[where]}: {shown}")


def _list_families(reg: Any, *, detail: bool) -> None:
    """Model families: by name (the model types each owns); with ``list families``, a row
    each: pooling, default LoRA targets, whether the frozen-layer cache runs."""
    names = [f"{n} ({'/'.join(f.model_types)})" for n, f in reg.items()]
    print(f"{'families':10s} {'model_type':18s} {', '.join(names)}")
    if not detail:
        return
    for name, fam in reg.items():
        first = fam.model_types[0]
        cache = fam.cache_support(first) or "yes"
        print(f"  {name}: {fam.description}")
        print(
            f"    pooling {fam.pooling}, padding {fam.padding_side}, LoRA targets "
            f"{', '.join(fam.targets(first))}; layer cache: {cache}"
        )
