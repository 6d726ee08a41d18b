"""Plugin loading and the backend registry.

Entry points of the ``polyvisor`` group are loaded one at a time: a plugin that fails to import is recorded and
reported when its scheme is asked for, and never stops the others. ``POLYVISOR_DISABLE_PLUGINS`` (comma-separated
entry-point names, or ``all`` for every external one) turns plugins off without uninstalling them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pluggy

from polyvisor import hookspecs
from polyvisor.backend import Backend, Credentials
from polyvisor.errors import NotFoundError, PolyvisorError, ValidationError
from polyvisor.uri import URI

__all__ = [
    "DISABLE_ENV",
    "BackendEntry",
    "BackendRegistry",
    "PluginFailure",
    "Plugins",
    "default_plugins",
]

DISABLE_ENV = "POLYVISOR_DISABLE_PLUGINS"

BackendFactory = Callable[[URI, Credentials], Backend]

# Where to find a backend for schemes no installed plugin claims: the install hint of the error message.
_KNOWN_DISTRIBUTIONS = {
    **dict.fromkeys(
        [
            "test",
            "qemu",
            "kvm",
            "xen",
            "lxc",
            "esx",
            "gsx",
            "vpx",
            "vbox",
            "vmwarews",
            "vmwareplayer",
            "vmwarefusion",
            "bhyve",
            "ch",
            "openvz",
            "vz",
            "libxl",
            "hyperv-libvirt",
        ],
        "polyvisor-libvirt",
    ),
    "hyperv": "polyvisor-hyperv",
}


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """One registered driver."""

    driver: str
    target: str | BackendFactory
    plugin: str
    distribution: str | None
    description: str

    def load(self) -> BackendFactory:
        """Import (if needed) and return the factory."""
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        module = importlib.import_module(module_name)
        factory: BackendFactory = getattr(module, attr) if attr else module  # type: ignore[assignment]
        return factory


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be loaded."""

    name: str
    distribution: str | None
    error: BaseException

    def describe(self) -> str:
        """One line saying what failed."""
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.name!r}{dist} failed to load: {type(self.error).__name__}: {self.error}"


class BackendRegistry:
    """Where plugins register backend drivers; handed to the ``polyvisor_register_backends`` hook."""

    def __init__(self) -> None:
        self._entries: dict[str, BackendEntry] = {}
        self._current_plugin = "<direct>"
        self._current_distribution: str | None = None

    def add(
        self,
        driver: str,
        target: str | BackendFactory,
        *,
        description: str = "",
        replace: bool = False,
    ) -> None:
        """Register ``target`` (a ``"module:attr"`` path or a callable) for URIs whose driver is ``driver``."""
        driver = driver.lower()
        if not driver.replace("-", "").replace(".", "").isalnum():
            raise ValidationError(f"{driver!r} is not a URI driver name", field="driver")
        existing = self._entries.get(driver)
        if existing is not None and not replace:
            raise PolyvisorError(
                f"driver {driver!r} is registered twice: by plugin {existing.plugin!r} and by "
                f"{self._current_plugin!r}; disable one with {DISABLE_ENV}"
            )
        self._entries[driver] = BackendEntry(
            driver, target, self._current_plugin, self._current_distribution, description
        )

    @property
    def entries(self) -> Mapping[str, BackendEntry]:
        """A read-only view of the registered drivers."""
        return MappingProxyType(self._entries)

    def _registering(self, plugin: str, distribution: str | None) -> None:
        self._current_plugin = plugin
        self._current_distribution = distribution


class Plugins:
    """A plugin manager plus the backend registry it fills. Create your own to isolate tests."""

    def __init__(self, *, load_entry_points: bool = True, disabled: str | None = None) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.registry = BackendRegistry()
        self.failures: list[PluginFailure] = []
        self.disabled: frozenset[str] = frozenset()
        self._distributions: dict[str, str | None] = {}
        spec = os.environ.get(DISABLE_ENV, "") if disabled is None else disabled
        self.disabled = frozenset(name.strip() for name in spec.split(",") if name.strip())
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME), key=lambda e: e.name):
            distribution = ep.dist.name if ep.dist is not None else None
            if "all" in self.disabled or ep.name in self.disabled:
                continue
            if self.manager.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name, distribution=distribution)
            except Exception as error:
                self.failures.append(PluginFailure(ep.name, distribution, error))

    def register(self, plugin: object, *, name: str | None = None, distribution: str | None = None) -> None:
        """Register a plugin object in-process and let it add its backends."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self.manager.register(plugin, name=name)
        self.manager.check_pending()
        self._distributions[name] = distribution
        self.registry._registering(name, distribution)
        try:
            # Call this plugin's implementation alone, so one plugin's failure is attributed to it.
            for impl in self.manager.hook.polyvisor_register_backends.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(registry=self.registry)
        except Exception:
            self.manager.unregister(plugin)
            raise
        finally:
            self.registry._registering("<direct>", None)

    def schemes(self) -> list[str]:
        """Return the registered drivers, without importing any backend."""
        return sorted(self.registry.entries)

    def factory_for(self, uri: URI) -> BackendFactory:
        """Return the factory for the URI's driver, or raise NotFoundError saying what to install."""
        entry = self.registry.entries.get(uri.driver)
        if entry is not None:
            return entry.load()
        wanted = _KNOWN_DISTRIBUTIONS.get(uri.driver)
        hints = []
        for failure in self.failures:
            if wanted is None or failure.distribution == wanted:
                hints.append(failure.describe())
        message = f"no installed backend handles {uri.driver!r} URIs"
        if wanted:
            message += f"; install it with: pip install {wanted}"
        if hints:
            message += "; " + "; ".join(hints)
        if self.disabled:
            message += f" ({DISABLE_ENV}={','.join(sorted(self.disabled))})"
        if self.schemes():
            message += f". Available drivers: {', '.join(self.schemes())}"
        raise NotFoundError(message)

    def import_backend(self, uri: URI) -> None:
        """Import the backend of the URI's driver and what it loads lazily (see
        :meth:`~polyvisor.backend.Backend.import_dependencies`); one that cannot be imported is left for the
        connection to report."""
        try:
            factory = self.factory_for(uri)
            preload = getattr(factory, "import_dependencies", None)
            if callable(preload):
                preload(uri)
        except Exception:  # connect() raises it again, attributed to its host
            return

    def iter_plugins(self) -> Iterator[tuple[str, Any]]:
        """Yield (name, plugin) for every registered plugin."""
        yield from self.manager.list_name_plugin()


_default: Plugins | None = None


def default_plugins() -> Plugins:
    """Return the process-wide plugins loaded from installed entry points (created on first use)."""
    global _default
    if _default is None:
        _default = Plugins()
    return _default


def reset_default_plugins() -> None:
    """Forget the default plugins so the next :func:`default_plugins` reloads entry points."""
    global _default
    _default = None
