"""Old spec keys, moved into their new places: the one module that knows them.

A spec, a stored trial config or a bundle's ``config.yaml`` written before the built-in
backbones owned their knobs still loads: ``fusion.ease_lambda`` becomes EASE's
``fusion.cf_params.lambda`` and so on (:data:`OLD_FUSION_KEYS`), in the trial config, the
search space and the enqueued trials, with one deprecation line per process. Such a config
with a backbone other than mf keeps ``fusion.legacy_id_dim``: every backbone then allocated
ID embeddings, and their random draws moved the generator the trial's dropout masks come
from, so its trials draw them still and re-run to the numbers they recorded.

A data section written before the dataset sources owned their knobs loads the same way:
``data.synthetic``'s and ``data.book_crossing``'s keys and csv's ``data.items_path``,
``users_path`` and ``columns`` move into ``data.params`` where the dataset is theirs, and are
dropped where it is not (they never acted there) (:data:`OLD_DATA_KEYS`).

Switching an entry (``fusion.cf``, ``adapter.type``) by an override or a search drops the
knobs of the entry it replaces that the new one does not have (:func:`drop_switched_knobs`):
a study searching ``fusion.cf: [ease, mf]`` over a base ``cf_params: {lambda: 200}`` gives
its mf trials mf's own defaults, not EASE's lambda.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "OLD_DATA_KEYS",
    "OLD_FUSION_KEYS",
    "OLD_SWEEP_KEYS",
    "drop_switched_knobs",
    "move_old_data_keys",
    "move_old_fusion_keys",
    "move_old_spec_keys",
]

logger = logging.getLogger("moo_search")

OLD_FUSION_KEYS: dict[str, tuple[str, str, Any]] = {
    "ease_lambda": ("ease", "lambda", None),
    "knn_neighbours": ("itemknn", "neighbours", 100),
    "sansa_l2": ("sansa", "l2", None),
    "sansa_density": ("sansa", "density", None),
    "id_dim": ("mf", "dim", 64),
}
"""old ``fusion.<key>`` -> (the backbone that owns it, its name in ``fusion.cf_params``, its
old default)."""

_WARNED: set[str] = set()


def _deprecated(keys: list[str]) -> None:
    """One deprecation line for old ``fusion.<key>`` keys (see :func:`_warn_once`)."""
    _warn_once(
        [
            f"fusion.{k} -> fusion.cf_params.{OLD_FUSION_KEYS[k][1]} ({OLD_FUSION_KEYS[k][0]})"
            for k in keys
        ],
        "; a key of a backbone the trial does not use is dropped",
    )


def move_old_fusion_keys(fusion: Any) -> Any:
    """``fusion`` (plain data) with its old keys moved into ``cf_params`` where they belong
    to the chosen backbone, dropped where they do not (they never acted there)."""
    if isinstance(fusion, dict) and fusion.get("cf") == "mf" and fusion.get("legacy_id_dim"):
        # an old base config switched to mf: its ID embeddings had the old size
        fusion = dict(fusion)
        legacy = fusion.pop("legacy_id_dim")
        fusion["cf_params"] = {"dim": legacy, **(fusion.get("cf_params") or {})}
    if not isinstance(fusion, dict) or not any(k in fusion for k in OLD_FUSION_KEYS):
        return fusion
    out = dict(fusion)
    cf = out.get("cf", "ease")
    params = dict(out.get("cf_params") or {})
    found = [k for k in OLD_FUSION_KEYS if k in out]
    for key in found:
        owner, knob, _ = OLD_FUSION_KEYS[key]
        value = out.pop(key)
        if owner == cf and value is not None:
            params.setdefault(knob, value)
    if cf != "mf" and isinstance(fusion.get("id_dim"), int):
        # a config from when every backbone drew ID embeddings: its trials still draw them
        out.setdefault("legacy_id_dim", fusion["id_dim"])
    out["cf_params"] = params
    _deprecated(found)
    return out


OLD_DATA_KEYS: dict[str, tuple[str, str | None]] = {
    "synthetic": ("synthetic", None),
    "book_crossing": ("book-crossing", None),
    "items_path": ("csv", "items_path"),
    "users_path": ("csv", "users_path"),
    "columns": ("csv", "columns"),
}
"""old ``data.<key>`` -> (the dataset source that owns it, its name in ``data.params``; None:
a section whose keys are the source's knobs)."""


def move_old_data_keys(data: Any) -> Any:
    """``data`` (plain data) with its old keys moved into ``params`` where they belong to the
    chosen dataset source, dropped where they do not (they never acted there)."""
    if not isinstance(data, dict) or not any(k in data for k in OLD_DATA_KEYS):
        return data
    out = dict(data)
    dataset = out.get("dataset", "movielens-100k")
    params = dict(out.get("params") or {})
    found = [k for k in OLD_DATA_KEYS if k in out]
    for key in found:
        owner, knob = OLD_DATA_KEYS[key]
        value = out.pop(key)
        if owner != dataset or value is None:
            continue
        if knob is not None:
            params.setdefault(knob, value)
        elif isinstance(value, dict):
            params = {**value, **params}
        else:
            out[key] = value  # not a section: refused, naming data.<key>
    out["params"] = params
    _warn_once(
        [
            f"data.{k} -> data.params"
            + (f".{OLD_DATA_KEYS[k][1]}" if OLD_DATA_KEYS[k][1] else "")
            + f" ({OLD_DATA_KEYS[k][0]})"
            for k in found
        ],
        "; a key of a dataset the study does not use is dropped",
    )
    return out


def _warn_once(moved: list[str], note: str = "") -> None:
    """One deprecation line per process for the keys in ``moved`` not yet warned about."""
    new = [m for m in moved if m not in _WARNED]
    if not new:
        return
    _WARNED.update(new)
    logger.warning(
        "deprecated spec keys, read in their new places (write them there): %s%s",
        ", ".join(new),
        note,
    )


OLD_SWEEP_KEYS = {"sweep_rerank": "rerank", "sweep_fusion": "fusion"}
"""old ``driver.<key>`` -> the recommender section whose ``sweep`` it now is."""


def _move_sweep_flags(out: dict[str, Any]) -> None:
    """``driver.sweep_rerank`` / ``driver.sweep_fusion`` (the engine's driver section held
    them before the variants became the recommender's own) -> ``rerank.sweep`` /
    ``fusion.sweep``, unless the spec also sets the new key."""
    driver = out.get("driver")
    if not isinstance(driver, dict) or not any(k in driver for k in OLD_SWEEP_KEYS):
        return
    driver = dict(driver)
    moved = []
    for key, section in OLD_SWEEP_KEYS.items():
        if key in driver:
            value = driver.pop(key)
            if isinstance(out.get(section, {}), dict):
                out[section] = {"sweep": value, **(out.get(section) or {})}
            moved.append(f"driver.{key} -> {section}.sweep")
    out["driver"] = driver
    _warn_once(moved)


def move_old_spec_keys(raw: Any) -> Any:
    """A whole spec's old keys: the search space's and the enqueued trials' paths renamed
    (a knob searched under ``fusion.cf`` gets ``when`` its backbone), an old knob of a
    backbone the search may switch to kept as that backbone's one value, and the driver's
    old variant flags moved into the recommender's sections."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    _move_sweep_flags(out)
    space = out.get("search_space")
    cf_dim = space.get("fusion.cf") if isinstance(space, dict) else None
    choices = cf_dim.get("categorical") if isinstance(cf_dim, dict) else None
    if isinstance(space, dict):
        cf = (
            (out.get("fusion") or {}).get("cf", "ease")
            if isinstance(out.get("fusion"), dict)
            else "ease"
        )
        out["search_space"] = {
            _new_path(p): _with_when(p, d, choices)
            for p, d in space.items()
            if _acts(p, choices, cf)
        }
    if isinstance(out.get("enqueue"), list):
        out["enqueue"] = [
            {_new_path(k): v for k, v in e.items()} if isinstance(e, dict) else e
            for e in out["enqueue"]
        ]
    fusion = out.get("fusion")
    if isinstance(fusion, dict) and isinstance(choices, list):
        out["search_space"] = {**out["search_space"], **_kept_for_switch(fusion, choices, out)}
    _linear_task_heads(out)
    return out


FULL_LOSS_DUMP = ("content_neighbours", "content_temperature", "ranking", "temperature", "weights")
"""The keys every stored trial config's ``loss`` section has (a full dump of its fields)."""


def _linear_task_heads(out: dict[str, Any]) -> None:
    """A stored config (its ``loss`` a full dump of the fields) written before the task
    towers (no ``task_item_dropout``) keeps ``loss.task_towers: false``: its task heads were
    linear and its task terms read every feature, so it re-runs to the numbers it recorded."""
    loss = out.get("loss")
    if (
        isinstance(loss, dict)
        and all(k in loss for k in FULL_LOSS_DUMP)
        and "task_item_dropout" not in loss
        and "task_towers" not in loss
    ):
        out["loss"] = {**loss, "task_towers": False}


def _new_path(path: str) -> str:
    head, _, key = path.rpartition(".")
    parts = path.split(".")
    if parts[0] == "data" and len(parts) > 1 and parts[1] in OLD_DATA_KEYS:
        owner, knob = OLD_DATA_KEYS[parts[1]]
        new = ".".join(["data", "params", *([knob] if knob else []), *parts[2:]])
        _warn_once([f"{path} -> {new} ({owner})"])
        return new
    if head == "fusion" and key in OLD_FUSION_KEYS:
        _deprecated([key])
        return f"fusion.cf_params.{OLD_FUSION_KEYS[key][1]}"
    return path


def _acts(path: str, choices: Any, cf: str) -> bool:
    """Whether a dimension on an old key could act: its backbone is the spec's, or one the
    search chooses (one that never could is dropped: it moved no trial)."""
    key = path.rpartition(".")[2]
    if not path.startswith("fusion.") or key not in OLD_FUSION_KEYS:
        return True
    owner = OLD_FUSION_KEYS[key][0]
    return owner in choices if isinstance(choices, list) else owner == cf


def _with_when(path: str, dim: Any, choices: Any) -> Any:
    key = path.rpartition(".")[2]
    if not path.startswith("fusion.") or key not in OLD_FUSION_KEYS or not choices:
        return dim
    if not isinstance(dim, dict) or "when" in dim:
        return dim
    return {**dim, "when": {"fusion.cf": [OLD_FUSION_KEYS[key][0]]}}


def _kept_for_switch(fusion: dict[str, Any], choices: list[Any], spec: dict[str, Any]) -> dict:
    """Old knobs (not at their old default) of a backbone other than ``fusion.cf`` that the
    search can switch to: one-value dimensions that apply when it does."""
    cf = fusion.get("cf", "ease")
    space = spec.get("search_space") or {}
    out: dict[str, Any] = {}
    for key, (owner, knob, default) in OLD_FUSION_KEYS.items():
        value = fusion.get(key)
        path = f"fusion.cf_params.{knob}"
        if owner == cf or owner not in choices or value in (None, default) or path in space:
            continue
        out[path] = {"categorical": [value], "when": {"fusion.cf": [owner]}}
    return out


def drop_switched_knobs(
    before: dict[str, Any], after: dict[str, Any], given: set[str], knobs: dict[str, Any]
) -> None:
    """In ``after`` (plain data, changed in place): where ``given`` paths switched an entry
    (``fusion.cf``, ``adapter.type``: the keys of ``knobs``), the knobs of the entry it
    replaces that are not given too and that the new entry does not own are dropped.
    ``knobs[path](new name) -> (section path, the knob names it owns)``."""
    for switch, owned in knobs.items():
        if switch not in given:
            continue
        section, name = switch.rsplit(".", 1)
        old = _get(before, section.split(".")).get(name)
        new = _get(after, section.split(".")).get(name)
        if old == new:
            continue
        where, keep = owned(new)
        node = _get(after, where.split("."))
        for key in list(node):
            if f"{where}.{key}" not in given and key not in keep:
                node.pop(key)


def _get(raw: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    node: Any = raw
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return {}
    return node if isinstance(node, dict) else {}
