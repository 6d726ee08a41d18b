"""The entry-point module: registers ``minimal://`` without importing the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyvisor.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry

__all__ = ["polyvisor_register_backends"]


@hookimpl
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register the minimal backend for ``minimal://`` URIs."""
    registry.add("minimal", "polyvisor_minimal.backend:MinimalBackend", description="required methods only (tests)")
