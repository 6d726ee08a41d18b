"""The commands the loopback host knows: Hyper-V, storage/network, and generic utility cmdlets."""

from __future__ import annotations

from . import devices, provisioning, utility, vm
from .base import Cmdlet, CommandContext, Param, Registry, Session

__all__ = ["Cmdlet", "CommandContext", "Param", "Registry", "Session", "default_registry"]


def default_registry() -> Registry:
    """Return a registry of every command this host implements."""
    return Registry([*vm.CMDLETS, *devices.CMDLETS, *provisioning.CMDLETS, *utility.CMDLETS])
