"""The polyvisor plugin: registers the ``hyperv`` driver without importing any client library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyvisor.hookspecs import hookimpl

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry

__all__ = ["polyvisor_register_backends"]


@hookimpl
def polyvisor_register_backends(registry: BackendRegistry) -> None:
    """Register ``hyperv://`` URIs."""
    registry.add(
        "hyperv",
        "polyvisor_hyperv.backend:HyperVBackend",
        description="Microsoft Hyper-V through PowerShell over PSRP or a WinRM shell",
    )
