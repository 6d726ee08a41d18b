"""VMware PowerCLI's same-named cmdlets, for hosts that have PowerCLI installed next to Hyper-V.

PowerCLI's VMware.VimAutomation.Core module exports Get-VM, New-VM, Start-VM, Stop-VM ... under the very names
the Hyper-V module uses (developer.broadcom.com/powercli/latest/vmware.vimautomation.core/commands/get-vm). When
both are loaded, the command added last wins an unqualified name (about_Command_Precedence), so ``Get-VM`` may
run PowerCLI's; ``Hyper-V\\Get-VM`` always runs Hyper-V's. With no vCenter connection these stand-ins fail as
PowerCLI does when $DefaultVIServers is empty (the message text is an ASSUMPTION: widely quoted, no vendor
page found).
"""

from __future__ import annotations

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .base import Cmdlet, CommandContext, Param, Registry

__all__ = ["CMDLETS", "MODULE", "import_powercli"]

MODULE = "VMware.VimAutomation.Core"
_CMD = "VMware.VimAutomation.ViCore.Cmdlets.Commands"
_NAMES = ("Get-VM", "New-VM", "Remove-VM", "Set-VM", "Start-VM", "Stop-VM", "Suspend-VM", "Restart-VM", "Get-VMHost")


def _not_connected(ctx: CommandContext, args: dict[str, object]) -> None:
    ctx.fail(
        HostError(
            "You are not currently connected to any servers. Please connect first using a Connect cmdlet.",
            error_id="Core_BaseCmdlet_NotConnectedError",
            category="ResourceUnavailable",
            exception_type="VMware.VimAutomation.ViCore.Types.V1.ErrorHandling.VimException.ViServerConnectionException",
        )
    )


_PARAMS = (
    Param("Name", "str[]", position=0),
    Param("Id", "str[]"),
    Param("VM", "object[]", pipeline=True),
    Param("Force", "switch"),
    Param("Confirm", "bool"),
)

CMDLETS = tuple(
    Cmdlet(name, f"{_CMD}.{name.replace('-', '')}", _PARAMS, _not_connected, module=MODULE) for name in _NAMES
)


def import_powercli(registry: Registry) -> None:
    """``Import-Module VMware.VimAutomation.Core`` after Hyper-V: its cmdlets hide Hyper-V's unqualified names."""
    for cmdlet in CMDLETS:
        registry.add(cmdlet)
