"""The commands the loopback host knows, and the .NET objects they emit.

``base`` binds parameters and holds the per-invocation context; ``vm`` (VMs, power, checkpoints, firmware, the host),
``devices`` (VHDs, drives, VM network adapters, files), ``switches`` (virtual switches, the host's adapters), ``netnat``
(the host's addresses and NAT), ``items`` (file-system items), ``provisioning`` (resizes, copies, file contents and
hashes, memory, processors), ``hardware`` (TPM, processor virtualization extensions, assigned devices), ``metering``
(Measure-VM, the virtual processor counters), ``cim`` (Get-CimInstance, Invoke-CimMethod: the counters and Hyper-V's WMI
screens) and ``utility`` (JSON, Select-Object, output) define the cmdlets; ``powercli`` the VMware PowerCLI cmdlets of
the same names; ``objects`` the .NET types. A cmdlet calls the room of the Hyper-V model that holds its verb
(``ctx.host.power.start_vm``), never a forwarder.
"""

from __future__ import annotations

from . import cim, devices, hardware, items, metering, netnat, provisioning, switches, utility, vm
from .base import Cmdlet, CommandContext, Param, Registry, Session

__all__ = ["Cmdlet", "CommandContext", "Param", "Registry", "Session", "default_registry"]


def default_registry() -> Registry:
    """Return a registry of every command this host implements."""
    return Registry(
        [
            *vm.CMDLETS,
            *devices.CMDLETS,
            *hardware.CMDLETS,
            *switches.CMDLETS,
            *netnat.CMDLETS,
            *items.CMDLETS,
            *provisioning.CMDLETS,
            *metering.CMDLETS,
            *cim.CMDLETS,
            *utility.CMDLETS,
        ]
    )
