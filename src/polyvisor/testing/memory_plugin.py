"""The entry-point module of ``memory://``: the core registers it the way any third party would."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyvisor.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry

__all__ = ["polyvisor_register_backends"]


@hookimpl
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register the in-memory backend for ``memory://``."""
    registry.add("memory", "polyvisor.testing.memory:MemoryBackend", description="in-memory hypervisor (tests)")
