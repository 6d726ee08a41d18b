"""The entry-point module of ``memory://``: the core registers it the way any third party would."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from polyvisor.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry, Plugins

__all__ = ["isolated_plugins", "polyvisor_register_backends"]


@hookimpl
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register the in-memory backend for ``memory://``."""
    registry.add("memory", "polyvisor.testing.memory:MemoryBackend", description="in-memory hypervisor (tests)")


def isolated_plugins() -> Plugins:
    """Plugins that know ``memory://`` alone and load no entry points: what a test of the core, the CLI or the
    fleet needs, whatever else is installed."""
    from polyvisor.plugins import Plugins

    plugins = Plugins(load_entry_points=False)
    plugins.register(sys.modules[__name__], name="memory", distribution="polyvisor")
    return plugins
