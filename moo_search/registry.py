"""One registry per extension point: where a dataset, adapter, backbone, driver, algorithm,
problem or metric becomes known.

Adding one is one module that registers it plus its test::

    from moo_search.data import make_synthetic
    from moo_search.data.registered import DatasetSource
    from moo_search.registry import DATASETS

    def load_my_data(cfg):  # DataConfig -> Dataset
        return make_synthetic(n_users=60, n_items=40, seed=cfg.split.seed)

    DATASETS.register("my-data", DatasetSource(load=load_my_data))

A registry whose entries have a type (``DatasetSource``, ``Backbone``, ``MetricDef``) refuses
anything else at registration, naming the type it expects.

The spec validates names against these registries and the CLI lists them, so an unknown name
gets the same did-you-mean message everywhere. Built-in entries live in the modules named by
``builtins`` and are imported on first lookup (the registries themselves import nothing heavy).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from moo_search.errors import SpecError

__all__ = [
    "ADAPTERS",
    "BACKBONES",
    "DATASETS",
    "DRIVERS",
    "METRICS",
    "PROBLEMS",
    "Registry",
]

T = TypeVar("T")
_DECORATE: Any = object()  # register(name) without an object: used as a decorator


class Registry(Generic[T]):
    """Names -> implementations of one kind.

    Args:
        kind: What an entry is, for messages ("adapter type").
        field: The spec field that names an entry, for errors ("adapter.type").
        builtins: Modules that register the built-in entries; imported on first lookup.
    """

    def __init__(
        self, kind: str, *, field: str, builtins: tuple[str, ...] = (), entry: str = ""
    ) -> None:
        self.kind = kind
        self.field = field
        self._builtins = builtins
        self._loaded = not builtins
        self._entries: dict[str, T] = {}
        self._entry = entry  # "module:Class" every entry must be an instance of ("": any)

    def _check_entry(self, name: str, obj: Any) -> None:
        if not self._entry:
            return
        module, _, cls_name = self._entry.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if not isinstance(obj, cls):
            raise TypeError(
                f"{self.kind} {name!r}: a registered {self.kind} is a {module}.{cls_name}, got "
                f"{type(obj).__name__} {obj!r}; wrap it, e.g. {cls_name}(...)"
            )

    # ---- registering

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = _DECORATE) -> Any:
        """Register ``obj`` under ``name`` (or use as a decorator). A name is registered once:
        a second registration raises ``ValueError`` naming both."""

        def add(o: T) -> T:
            self._check_entry(name, o)
            if name in self._entries and self._entries[name] is not o:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered ({self._entries[name]!r}); "
                    "choose another name or unregister it first"
                )
            self._entries[name] = o
            return o

        return add if obj is _DECORATE else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy entry clean up with this)."""
        self._entries.pop(name, None)

    # ---- looking up

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._builtins:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return list(self._entries.items())

    def unknown_message(self, name: object) -> str:
        """``unknown adapter type 'lorax'; did you mean 'lora'? (known: lora, dora, ...)``"""
        known = self.names()
        hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"unknown {self.kind} {name!r}{extra} (known: {', '.join(known)})"

    def check(self, name: str) -> str:
        """``name`` if registered, else ``ValueError`` with the did-you-mean message (for spec
        validators, which add the field path)."""
        if name not in self:
            raise ValueError(self.unknown_message(name))
        return name

    def get(self, name: str) -> T:
        """The entry for ``name``; ``SpecError`` on ``self.field`` if there is none."""
        if name not in self:
            raise SpecError(self.unknown_message(name), field=self.field)
        return self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


DATASETS: Registry[Any] = Registry(
    "dataset",
    field="data.dataset",
    builtins=("moo_search.data.registered",),
    entry="moo_search.data.registered:DatasetSource",
)
"""name -> :class:`moo_search.data.registered.DatasetSource` (``load(cfg) -> Dataset``,
optional ``fetch``/``is_cached``)."""

ADAPTERS: Registry[Any] = Registry(
    "adapter type", field="adapter.type", builtins=("moo_search.model.adapters",)
)
"""name -> ``build(model, cfg: AdapterConfig) -> peft config`` (None: no adapter)."""

BACKBONES: Registry[Any] = Registry(
    "collaborative backbone",
    field="fusion.cf",
    builtins=("moo_search.model.backbones",),
    entry="moo_search.model.backbones:Backbone",
)
"""name -> :class:`moo_search.model.backbones.Backbone`."""

DRIVERS: Registry[Any] = Registry(
    "driver backend",
    field="driver.backend",
    builtins=("moo_search.drivers._optuna", "moo_search.drivers._pymoo"),
)
"""name -> driver class (a :class:`moo_search.drivers.BaseDriver`); each driver class keeps the
registry of its algorithms as ``algorithms``."""

PROBLEMS: Registry[Any] = Registry("problem", field="objective", builtins=("moo_search.problems",))
"""name -> ``factory(**spec.problem) -> Problem`` with a known front."""

METRICS: Registry[Any] = Registry(
    "metric",
    field="objectives",
    builtins=("moo_search.metrics",),
    entry="moo_search.metrics._registry:MetricDef",
)
"""family name -> :class:`moo_search.metrics.MetricDef` (direction, compute, slices)."""
