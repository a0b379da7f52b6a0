"""The registry mechanism, and the engine's registries: drivers (each keeps its algorithms),
problems and objectives. The recommender keeps its own (datasets, adapter types, backbones,
metrics: :mod:`moo_search.recommender.registries`) with the same mechanism.

Adding one is one module that registers it plus its test; name the module in the spec's
``plugins`` and every process of the study (workers too) imports it::

    from moo_search.recommender.data import make_synthetic
    from moo_search.recommender.data.registered import DatasetSource
    from moo_search.recommender.registries import DATASETS

    def load_my_data(cfg):  # DataConfig -> Dataset
        return make_synthetic(n_users=60, n_items=40, seed=cfg.split.seed)

    DATASETS.register("my-data", DatasetSource(load=load_my_data))

A registry whose entries have a type (``DatasetSource``, ``Backbone``, ``MetricDef``) refuses
anything else at registration, naming the type it expects.

An installed package registers an objective without a ``plugins`` line: an entry point in the
group ``moo_search.objectives`` whose name is the objective's and whose value is the module that
registers it, imported on the name's first use. The recommender itself (the default objective,
``run_trial``) is such a plugin of the engine; where its libraries are not installed (``pip
install moo-search`` installs the engine alone), using it says what to install.

The spec validates names against the registries and ``moo-search list`` lists them, so an unknown name
gets the same did-you-mean message everywhere. Built-in entries live in the modules named by
``builtins`` and are imported on first lookup (the registries themselves import nothing heavy).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from moo_search.errors import MissingLibraries, SpecError

if TYPE_CHECKING:  # the entry types (the registries import nothing at run time)
    from moo_search.drivers import BaseDriver
    from moo_search.objective import Objective

__all__ = [
    "DRIVERS",
    "OBJECTIVES",
    "PROBLEMS",
    "Registry",
    "load_plugins",
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
        self,
        kind: str,
        *,
        field: str,
        builtins: tuple[str, ...] = (),
        entry: str = "",
        entry_points: str = "",
        adapt: str = "",
    ) -> None:
        self.kind = kind
        self.field = field
        self._builtins = builtins
        self._loaded = not builtins
        self._entries: dict[str, T] = {}
        self._entry = entry  # "module:Class" every entry must be an instance of ("": any)
        self._group = entry_points  # installed packages' entries: name -> registering module
        self._adapt = adapt  # "module:callable" that wraps an older kind of entry into one
        self._installed: dict[str, Any] | None = None  # name -> EntryPoint, not yet imported

    def _entry_points(self) -> dict[str, Any]:
        """The group's entry points not imported yet, by name (read once, from metadata)."""
        if self._installed is None:
            from importlib.metadata import entry_points

            found = entry_points(group=self._group) if self._group else ()
            self._installed = {ep.name: ep for ep in found}
        return {n: ep for n, ep in self._installed.items() if n not in self._entries}

    def _import_installed(self, name: str) -> None:
        """Import the module an installed package's entry point names for ``name``; its
        missing libraries are a :class:`MissingLibraries` naming them and the extra to install."""
        ep = self._entry_points().get(name)
        if ep is None:
            return
        dist = ep.dist.name if ep.dist is not None else "an installed package"
        try:
            importlib.import_module(ep.value.partition(":")[0])
        except ImportError as e:  # its message says what is missing (and what to install)
            raise MissingLibraries(
                f"{self.kind} {name!r} (from {dist}) cannot be loaded: {e}"
            ) from None
        if name not in self._entries:
            raise SpecError(
                f"{self.kind} {name!r}: {dist}'s entry point imported {ep.value} but it "
                f"registered no {self.kind} of that name",
                field=self.field,
            )

    def _entry_of(self, name: str, obj: Any) -> Any:
        """``obj`` as this registry's entry type: as it is, or wrapped by ``adapt`` (an older
        kind of entry, such as a bare function, still registers); else a ``TypeError``."""
        if not self._entry:
            return obj
        cls = _resolve(self._entry)
        if not isinstance(obj, cls) and self._adapt:
            obj = _resolve(self._adapt)(obj)
        if not isinstance(obj, cls):
            module, _, cls_name = self._entry.partition(":")
            raise TypeError(
                f"{self.kind} {name!r}: a registered {self.kind} is a {module}.{cls_name}, got "
                f"{type(obj).__name__} {obj!r}; wrap it, e.g. {cls_name}(...)"
            )
        return obj

    # ---- registering

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = _DECORATE) -> Any:
        """Register ``obj`` under ``name`` (or use as a decorator). A name is registered once:
        a second registration raises ``ValueError`` naming both."""

        def add(o: T) -> T:
            entry = self._entry_of(name, o)
            old = self._entries.get(name)
            if old is not None and o not in (old, getattr(old, "adapted_from", None)):
                raise ValueError(
                    f"{self.kind} {name!r} is already registered ({old!r}); "
                    "choose another name or unregister it first"
                )
            if old is None:
                self._entries[name] = entry
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
        """Registered names, and installed packages' names not imported yet."""
        self._load()
        return [*self._entries, *self._entry_points()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        """Every entry (importing installed packages' entry points; one whose libraries are
        missing is left out: :meth:`get` names them)."""
        self._load()
        for name in self._entry_points():
            try:
                self._import_installed(name)
            except MissingLibraries as e:
                logger.debug("%s", e)
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
        self._import_installed(name)
        return self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


DRIVERS: Registry[type[BaseDriver]] = Registry(
    "driver backend",
    field="driver.backend",
    builtins=("moo_search.drivers._optuna", "moo_search.drivers._pymoo"),
)
"""name -> driver class (a :class:`moo_search.drivers.BaseDriver`); each driver class keeps the
registry of its algorithms as ``algorithms``."""

PROBLEMS: Registry[Callable[..., Any]] = Registry(
    "problem", field="objective", builtins=("moo_search.problems",)
)
"""name -> ``factory(**spec.problem) -> Problem`` with a known front."""

OBJECTIVES: Registry[Objective] = Registry(
    "objective",
    field="objective",
    entry="moo_search.objective:Objective",
    entry_points="moo_search.objectives",
)
"""name -> :class:`moo_search.objective.Objective`. The default, ``run_trial``, is the
language-model recommender, found as any installed package's objective is: by its entry point
(``[project.entry-points."moo_search.objectives"]``)."""

logger = logging.getLogger("moo_search")


def _resolve(ref: str) -> Any:
    """``"package.module:Name.attr"`` -> that object."""
    module, _, attrs = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


_PLUGINS_LOADED: set[str] = set()


def _check_not_shadowed(name: str, field: str) -> None:
    """A plugin file in the working directory that another module of the same name (the
    standard library's, an installed one) would hide is refused, naming both files."""
    import importlib.util
    import os

    top = name.split(".", 1)[0]
    local = [p for p in (f"{top}.py", os.path.join(top, "__init__.py")) if os.path.isfile(p)]
    if not local:
        return
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return
    origin = getattr(found, "origin", None)
    here = os.path.realpath(local[0])
    if origin and os.path.realpath(origin) != here:
        raise SpecError(
            f"{name!r} names both {here} and {origin} ({'a built-in module' if origin in ('built-in', 'frozen') else 'found first on sys.path'}), "
            "so your file would not be imported; rename your plugin module",
            field=field,
        )


def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module (once per process): a study's ``plugins`` register its own datasets,
    metrics, backbones, objectives ... there, and every process of the study (``--workers N``,
    ``moo-search worker``) imports them before it validates the spec. A module is found as
    Python finds any (installed, or on ``PYTHONPATH``) or in the working directory.

    Raises:
        SpecError: on ``plugins``, naming the module that cannot be imported and why.
    """
    import os
    import sys

    if modules and os.getcwd() not in sys.path:  # a module beside the study, as `python -m` finds
        sys.path.append(os.getcwd())
    for i, name in enumerate(modules):
        if name in _PLUGINS_LOADED:
            continue
        _check_not_shadowed(name, f"plugins.{i}")
        try:
            module = importlib.import_module(name)
        except (Exception, SystemExit) as e:  # a plugin's own error (or exit): shown, not run past
            what = f"it called sys.exit({e.code!r})" if isinstance(e, SystemExit) else f"{e}"
            raise SpecError(
                f"cannot import plugin module {name!r}: {type(e).__name__}: {what}",
                field=f"plugins.{i}",
            ) from None
        logger.info("plugins.%d: %r from %s", i, name, getattr(module, "__file__", "?"))
        _PLUGINS_LOADED.add(name)
