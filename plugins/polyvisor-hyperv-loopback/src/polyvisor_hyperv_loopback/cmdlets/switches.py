"""Virtual switch cmdlets (Get-, New-, Remove-VMSwitch) and the host's physical adapters (Get-NetAdapter).

New-VMSwitch has the parameter sets of Windows: ``-SwitchType Internal|Private``, or ``-NetAdapterName`` (which
makes an External switch, ``-AllowManagementOS`` defaulting to true); never both. Get-VMSwitch and Remove-VMSwitch
read ``-Name`` as a wildcard pattern, and Remove-VMSwitch also takes switches on the pipeline and asks
ShouldContinue (so it needs ``-Force`` in a remote session). Get-NetAdapter emits the CIM objects a client selects
(Name, InterfaceDescription, Status, MacAddress); without ``-Physical`` it adds the host's ``vEthernet (<switch>)``
adapters of the switches the host shares.
"""

from __future__ import annotations

import uuid

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import new_custom_object
from polyvisor_hyperv_loopback.powershell.wildcards import has_wildcard, wildcard_match

from .base import Cmdlet, CommandContext, Param
from .objects import switch_object

__all__ = ["CMDLETS"]

CMD = "Microsoft.HyperV.PowerShell.Commands"
NS = "Microsoft.HyperV.PowerShell"
NET_ADAPTER = "Microsoft.Management.Infrastructure.CimInstance#ROOT/StandardCimv2/MSFT_NetAdapter"


def _not_found(name: str) -> HostError:
    return HostError(
        f'Hyper-V was unable to find a virtual switch with name "{name}".',
        error_id="InvalidParameter",
        category="InvalidArgument",
        target_name=name,
    )


def _get_switch(ctx: CommandContext, args: dict[str, object]) -> None:
    switches = ctx.host.network.list_switches()
    if "Id" in args:
        switches = [s for s in switches if s.id == args["Id"]]
    names = args.get("Name")
    if names is None:
        for switch in switches:
            ctx.write(switch_object(ctx.host, switch))
        return
    for name in names:  # type: ignore[attr-defined]
        matched = [s for s in switches if wildcard_match(name, s.name)]
        if not matched and not has_wildcard(name):
            ctx.write_error(_not_found(name))
        for switch in matched:
            ctx.write(switch_object(ctx.host, switch))


def _parameter_set_error() -> HostError:
    return HostError(
        "Parameter set cannot be resolved using the specified named parameters.",
        error_id="AmbiguousParameterSet",
        category="InvalidArgument",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


def _new_switch(ctx: CommandContext, args: dict[str, object]) -> None:
    adapters: list[str] = list(args.get("NetAdapterName") or [])  # type: ignore[call-overload]
    if ("SwitchType" in args) == bool(adapters) or ("AllowManagementOS" in args and not adapters):
        ctx.fail(_parameter_set_error())
    if len(adapters) > 1:
        ctx.fail(
            HostError(
                "Multiple network adapters can only be bound to a switch with embedded teaming enabled.",
                error_id="InvalidArgument",
                category="InvalidArgument",
            )
        )
    name = str(args["Name"])
    if not ctx.should_process(False):
        return
    switch = ctx.host.network.new_switch(
        name,
        str(args.get("SwitchType", "External")),
        str(args.get("Notes", "")),
        net_adapter=adapters[0] if adapters else None,
        allow_management_os=bool(args.get("AllowManagementOS", True)),
    )
    ctx.write(switch_object(ctx.host, switch))


def _remove_switch(ctx: CommandContext, args: dict[str, object]) -> None:
    targets: list[uuid.UUID] = []
    for obj in args.get("VMSwitch", []):  # type: ignore[attr-defined]
        if not (isinstance(obj, PSObject) and obj.PSTypeNames[:1] == [f"{NS}.VMSwitch"]):
            raise HostError(
                f'Cannot bind parameter \'VMSwitch\'. Cannot convert the "{obj}" value to type "{NS}.VMSwitch".',
                error_id="CannotConvertArgument",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        targets.append(uuid.UUID(str(obj.Id)))
    switches = ctx.host.network.list_switches()
    for name in args.get("Name", []):  # type: ignore[attr-defined]
        matched = [s.id for s in switches if wildcard_match(name, s.name)]
        if not matched and not has_wildcard(name):
            ctx.write_error(_not_found(name))
        targets += matched
    for switch_id in dict.fromkeys(targets):
        if ctx.should_process(True, bool(args.get("Force"))):
            ctx.host.network.remove_switch(switch_id)


def _adapter_object(name: str, description: str, mac: str, status: str = "Up") -> PSObject:
    pairs: list[tuple[str, object]] = [
        ("Name", name),
        ("InterfaceDescription", description),
        ("Status", status),
        ("MacAddress", mac),
    ]
    obj = new_custom_object(pairs)
    obj.PSObject.type_names.insert(0, NET_ADAPTER)
    return obj


def _get_net_adapter(ctx: CommandContext, args: dict[str, object]) -> None:
    found: list[tuple[str, str, str]] = [
        (a.name, a.interface_description, a.mac_address) for a in ctx.host.network.net_adapters()
    ]
    if not args.get("Physical"):
        for index, switch in enumerate(ctx.host.network.list_switches()):
            if switch.switch_type == "Internal" or (switch.switch_type == "External" and switch.allow_management_os):
                mac = f"00-15-5D-00-01-{index:02X}"
                found.append((f"vEthernet ({switch.name})", "Hyper-V Virtual Ethernet Adapter", mac))
    names = args.get("Name")
    if names is None:
        for item in found:
            ctx.write(_adapter_object(*item))
        return
    for name in names:  # type: ignore[attr-defined]
        matched = [item for item in found if wildcard_match(name, item[0])]
        if not matched and not has_wildcard(name):
            ctx.write_error(
                HostError(
                    f"No MSFT_NetAdapter objects found with property 'Name' equal to '{name}'.  Verify the value "
                    "of the property and retry.",
                    error_id="CmdletizationQuery_NotFound_Name,Get-NetAdapter",
                    category="ObjectNotFound",
                    target_name=name,
                )
            )
        for item in matched:
            ctx.write(_adapter_object(*item))


CMDLETS = (
    Cmdlet(
        "Get-VMSwitch",
        f"{CMD}.GetVMSwitch",
        (Param("Name", "str[]", position=0, aliases=("SwitchName",)), Param("Id", "guid")),
        _get_switch,
    ),
    Cmdlet(
        "New-VMSwitch",
        f"{CMD}.NewVMSwitch",
        (
            Param("Name", "str", position=0, aliases=("SwitchName",)),
            Param("SwitchType", "choice", choices=("Internal", "Private")),
            Param("NetAdapterName", "str[]", aliases=("InterfaceAlias",)),
            Param("AllowManagementOS", "bool"),
            Param("Notes", "str"),
        ),
        _new_switch,
    ),
    Cmdlet(
        "Remove-VMSwitch",
        f"{CMD}.RemoveVMSwitch",
        (
            Param("Name", "str[]", position=0, aliases=("SwitchName",)),
            Param("VMSwitch", "object[]", pipeline=True, pipeline_type=f"{NS}.VMSwitch"),
            Param("Force", "switch"),
        ),
        _remove_switch,
    ),
    Cmdlet(
        "Get-NetAdapter",
        "Microsoft.Management.Infrastructure.CimCmdlets.NetAdapter",
        (Param("Name", "str[]", position=0, aliases=("ifAlias", "InterfaceAlias")), Param("Physical", "switch")),
        _get_net_adapter,
        module="NetAdapter",
    ),
)
