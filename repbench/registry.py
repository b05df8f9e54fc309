"""Registries: names in configs -> components (representations, dataset readers, kernels, regressors).

Every component is registered once, by name, in its registry; the config validator, the CLI listings
(``repbench representations``, ``repbench datasets list``, ``repbench kernels``, ``repbench regressors``)
and the docs read the registries, so no other list of names exists.

Two ways in:

* **Built in** (part of repbench): one line in the registry's table of built-ins, ``name ->
  "module:attribute"`` (see ``repbench/representations/__init__.py`` for an example).  The module is only
  imported when the component is used, so ``import repbench`` stays cheap.
* **Plugins** (another installed package): a Python entry point in one of the groups of :data:`GROUPS`, e.g.
  in the plugin's ``pyproject.toml``::

      [project.entry-points."repbench.representations"]
      radial_histogram = "my_package.descriptors:RadialHistogram"

  Entry points are read with :func:`importlib.metadata.entry_points` the first time a registry is used.
  A plugin whose name is already taken by a built-in is ignored with a warning (built-ins always win, so
  that a config means the same everywhere); a plugin that fails to import gives one clear error naming its
  package when it is used, and is shown as broken in the listings.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError

log = logging.getLogger("repbench")

#: kind of component -> entry-point group
GROUPS: dict[str, str] = {
    "representation": "repbench.representations",
    "dataset": "repbench.datasets",
    "kernel": "repbench.kernels",
    "regressor": "repbench.regressors",
}


@dataclass
class Entry:
    """One registered component.

    name: the name configs use.  target: the object, or ``"module:attribute"`` to import on first use.
    source: ``"repbench"`` for built-ins, else the distribution (package) that registered it.
    """

    name: str
    target: Any
    source: str = "repbench"
    _loaded: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self, kind: str) -> Any:
        if self._loaded is not None:
            return self._loaded
        if self._error is not None:
            raise ConfigError(self._error)
        if not isinstance(self.target, str):
            self._loaded = self.target
            return self._loaded
        mod, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(mod)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take repbench down
            self._error = (f"the {kind} {self.name!r} from package {self.source!r} cannot be loaded "
                           f"({self.target}: {e.__class__.__name__}: {e})")
            raise ConfigError(self._error, hint=f"reinstall or fix the package {self.source!r}, or "
                                                f"uninstall it") from None
        self._loaded = obj
        return obj


def expects(base: type, *, instance: bool, hint: str = "see docs/extending.md") -> Callable[[str, Any], None]:
    """A plugin check: the loaded object must be an instance (or, ``instance=False``, a subclass) of
    ``base``; otherwise one :class:`ConfigError` naming the plugin."""
    what = f"{base.__module__}.{base.__qualname__}"

    def check(name: str, obj: Any) -> None:
        ok = isinstance(obj, base) if instance else (isinstance(obj, type) and issubclass(obj, base))
        if not ok:
            raise ConfigError(f"the plugin {name!r} is not {'an instance' if instance else 'a subclass'} of "
                              f"{what}", hint=hint)

    return check


class Registry(Mapping[str, Any]):
    """Name -> component for one kind of component (see the module docstring).

    Behaves as a read-only mapping from names to the loaded components (classes or objects); iteration
    is in registration order (built-ins in the order of their table, then plugins).  ``entry(name)``
    gives the :class:`Entry` with its source package.
    """

    def __init__(self, kind: str, builtins: Mapping[str, Any], *, group: str | None = None,
                 check: Callable[[str, Any], None] | None = None):
        self.kind = kind
        self.group = group if group is not None else GROUPS[kind]
        self._entries: dict[str, Entry] = {n: Entry(n, t) for n, t in builtins.items()}
        self._discovered = False
        self._lock = threading.Lock()
        self._check = check

    # ----------------------------------------------------------------- registration
    def register(self, name: str, target: Any, *, source: str = "repbench", replace: bool = False) -> None:
        """Register ``target`` (an object or ``"module:attribute"``) under ``name``."""
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"invalid {self.kind} name {name!r}: use letters, digits, '_' and '-'")
        self._discover()
        if name in self._entries and not replace:
            raise ValueError(f"a {self.kind} named {name!r} is already registered "
                             f"(by {self._entries[name].source})")
        self._entries[name] = Entry(name, target, source)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive use)."""
        self._discover()
        self._entries.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            from importlib.metadata import entry_points

            try:
                eps = entry_points(group=self.group)
            except Exception as e:  # noqa: BLE001 - damaged metadata of some other package
                log.warning("cannot read the %s plugins (entry points %s): %s", self.kind, self.group, e)
                return
            for ep in eps:
                dist = getattr(ep, "dist", None)
                source = getattr(dist, "name", None) or ep.module.split(".")[0]
                if ep.name in self._entries:
                    if self._entries[ep.name].source != source:
                        log.warning("ignoring the %s %r of package %r: the name is taken by %s", self.kind,
                                    ep.name, source, self._entries[ep.name].source)
                    continue
                self._entries[ep.name] = Entry(ep.name, ep.value, source)

    # ----------------------------------------------------------------- lookup
    def entry(self, name: str) -> Entry:
        self._discover()
        return self._entries[name]

    def entries(self) -> list[Entry]:
        self._discover()
        return list(self._entries.values())

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)

    def get_component(self, name: str, where: str = "", file: str = "") -> Any:
        """The component ``name``, or a :class:`ConfigError` naming ``where`` and the allowed names."""
        self._discover()
        if not isinstance(name, str) or name not in self._entries:
            raise ConfigError(f"{where + ': ' if where else ''}unknown {self.kind} {name!r}", where=file,
                              hint="allowed: " + ", ".join(self.names()))
        e = self._entries[name]
        try:
            obj = e.load(self.kind)
        except ConfigError as err:
            raise ConfigError(err.message, where=file or where, hint=err.hint) from None
        if self._check is not None and e.source != "repbench":
            self._check(name, obj)
        return obj

    def __getitem__(self, name: str) -> Any:
        self._discover()
        if name not in self._entries:
            raise KeyError(name)
        return self.get_component(name)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._discover()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


__all__ = ["GROUPS", "Entry", "Registry", "expects"]
