"""Storage, drive, network adapter and file cmdlets (switches: :mod:`.switches`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.hyperv import HardDiskRecord, NetworkAdapterRecord, VMRecord
from polyvisor_hyperv_loopback.hyperv.filesystem import normalize_path
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.wildcards import wildcard_match

from .base import Cmdlet, CommandContext, Param
from .objects import (
    dvd_object,
    hard_disk_object,
    network_adapter_object,
    vhd_object,
)
from .vm import resolve_vms

__all__ = ["CMDLETS"]

CMD = "Microsoft.HyperV.PowerShell.Commands"
VHD_CMD = "Microsoft.Vhd.PowerShell.Cmdlets"
NS = "Microsoft.HyperV.PowerShell"


def _vms(ctx: CommandContext, args: dict[str, object]) -> list[VMRecord]:
    return resolve_vms(ctx, args, name_param="VMName")


def _slot(obj: object, type_name: str) -> tuple[uuid.UUID, tuple[str, int, int]]:
    if not (isinstance(obj, PSObject) and obj.PSTypeNames[:1] == [type_name]):
        raise HostError(
            f'Cannot bind parameter. Cannot convert the "{obj}" value to type "{type_name}".',
            error_id="CannotConvertArgument",
            category="InvalidArgument",
            exception_type="System.Management.Automation.ParameterBindingException",
        )
    ctype = obj.ControllerType.name
    return uuid.UUID(int=obj.VMId.int), (ctype, int(obj.ControllerNumber), int(obj.ControllerLocation))


# ----- VHD files -----


def _new_vhd(ctx: CommandContext, args: dict[str, object]) -> None:
    kinds = [k for k in ("Fixed", "Dynamic", "Differencing") if args.get(k)]
    if len(kinds) > 1:
        ctx.fail(
            HostError(
                "Parameter set cannot be resolved using the specified named parameters.",
                error_id="AmbiguousParameterSet",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        )
    vhd_type = kinds[0] if kinds else ("Differencing" if "ParentPath" in args else "Dynamic")
    for path in args["Path"]:  # type: ignore[attr-defined]
        if not ctx.should_process(high_impact=False):
            continue
        entry = ctx.host.disks.new_vhd(
            path,
            args.get("SizeBytes"),  # type: ignore[arg-type]
            vhd_type=vhd_type,
            parent_path=args.get("ParentPath"),  # type: ignore[arg-type]
        )
        ctx.write(vhd_object(ctx.host, entry))


def _get_vhd(ctx: CommandContext, args: dict[str, object]) -> None:
    if "Path" in args:
        for path in args["Path"]:  # type: ignore[attr-defined]
            ctx.write(vhd_object(ctx.host, ctx.host.disks.get_vhd(path)))
        return
    for vm in _vms(ctx, args):
        for drive in vm.config.hard_drives:
            if drive.path:
                ctx.write(vhd_object(ctx.host, ctx.host.disks.get_vhd(drive.path)))


def _remove_item(ctx: CommandContext, args: dict[str, object]) -> None:
    for path in args["Path"]:  # type: ignore[attr-defined]
        if ctx.should_process(high_impact=False):
            if ctx.host.files.get(path) is None and ctx.host.files.is_directory(path):
                ctx.host.files.remove_directory(path)  # without -Recurse: only an empty one
            else:
                ctx.host.disks.remove_file(path)


def _test_path(ctx: CommandContext, args: dict[str, object]) -> None:
    for path in args["Path"]:  # type: ignore[attr-defined]
        ctx.write(ctx.host.files.exists(normalize_path(path)))


# ----- drives -----


def _add_hdd(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _vms(ctx, args):
        drive = ctx.host.drives.add_hard_disk(
            vm.id,
            args.get("Path"),  # type: ignore[arg-type]
            args.get("ControllerType"),  # type: ignore[arg-type]
            args.get("ControllerNumber"),  # type: ignore[arg-type]
            args.get("ControllerLocation"),  # type: ignore[arg-type]
            disk_number=args.get("DiskNumber"),  # type: ignore[arg-type]
        )
        if args.get("Passthru"):
            ctx.write(hard_disk_object(ctx.host, ctx.host.get_vm(vm.id), drive))


def _slot_filter(args: dict[str, object]) -> Callable[[HardDiskRecord], bool]:
    """-ControllerType/-ControllerNumber/-ControllerLocation narrow the drives (each only when given)."""
    kind, number, location = args.get("ControllerType"), args.get("ControllerNumber"), args.get("ControllerLocation")
    return lambda drive: (
        (kind is None or drive.controller_type == kind)
        and (number is None or drive.controller_number == number)
        and (location is None or drive.controller_location == location)
    )


def _get_hdd(ctx: CommandContext, args: dict[str, object]) -> None:
    wanted = _slot_filter(args)
    for obj in args.get("VMSnapshot", []):  # type: ignore[attr-defined]
        # A checkpoint's drives: the disks as they were when it was taken (its differencing disk's parents).
        vm, snap = ctx.host.checkpoints.snapshot_by_id(uuid.UUID(int=obj.Id.int))
        for drive in filter(wanted, snap.config.hard_drives):
            ctx.write(hard_disk_object(ctx.host, vm, drive, snap))
    for vm in _vms(ctx, args):
        for drive in filter(wanted, vm.config.hard_drives):
            ctx.write(hard_disk_object(ctx.host, vm, drive))


def _remove_drive(dvd: bool, type_name: str, param: str) -> object:
    def body(ctx: CommandContext, args: dict[str, object]) -> None:
        for obj in args.get(param, []):  # type: ignore[attr-defined]
            vm_id, slot = _slot(obj, type_name)
            ctx.host.drives.remove_drive(vm_id, slot, dvd=dvd)
        for vm in _vms(ctx, args) if "VMName" in args else []:
            slot = (
                str(args.get("ControllerType", "SCSI" if vm.generation == 2 else "IDE")),
                int(args.get("ControllerNumber", 0)),  # type: ignore[call-overload]
                int(args.get("ControllerLocation", 0)),  # type: ignore[call-overload]
            )
            ctx.host.drives.remove_drive(vm.id, slot, dvd=dvd)

    return body


def _add_dvd(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _vms(ctx, args):
        drive = ctx.host.drives.add_dvd_drive(vm.id, args.get("Path"))  # type: ignore[arg-type]
        if args.get("Passthru"):
            ctx.write(dvd_object(ctx.host, ctx.host.get_vm(vm.id), drive))


def _get_dvd(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _vms(ctx, args):
        for drive in vm.config.dvd_drives:
            ctx.write(dvd_object(ctx.host, vm, drive))


def _set_dvd(ctx: CommandContext, args: dict[str, object]) -> None:
    targets: list[tuple[uuid.UUID, tuple[str, int, int]]] = []
    for obj in args.get("VMDvdDrive", []):  # type: ignore[attr-defined]
        targets.append(_slot(obj, f"{NS}.DvdDrive"))
    for vm in _vms(ctx, args) if "VMName" in args else []:
        ctype = "SCSI" if vm.generation == 2 else "IDE"
        number = int(args.get("ControllerNumber", 1 if ctype == "IDE" else 0))  # type: ignore[call-overload]
        location = args.get("ControllerLocation")
        if location is None:
            drives = [d for d in vm.config.dvd_drives if d.controller_number == number]
            location = drives[0].controller_location if drives else 0
        targets.append((vm.id, (ctype, number, int(location))))  # type: ignore[call-overload]
    for vm_id, slot in targets:
        drive = ctx.host.drives.set_dvd_media(vm_id, slot, args.get("Path"))  # type: ignore[arg-type]
        if args.get("Passthru"):
            ctx.write(dvd_object(ctx.host, ctx.host.get_vm(vm_id), drive))


# ----- network -----


def _add_nic(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _vms(ctx, args):
        nic = ctx.host.network.add_network_adapter(
            vm.id,
            str(args.get("Name", "Network Adapter")),
            args.get("SwitchName"),  # type: ignore[arg-type]
            args.get("StaticMacAddress"),  # type: ignore[arg-type]
            bool(args.get("IsLegacy")),
        )
        if args.get("Passthru"):
            ctx.write(network_adapter_object(ctx.host, ctx.host.get_vm(vm.id), nic))


def _by_name(
    ctx: CommandContext, args: dict[str, object], vms: list[VMRecord]
) -> list[tuple[VMRecord, NetworkAdapterRecord]]:
    """The VMs' adapters, filtered by -Name as Hyper-V does: a case-insensitive wildcard pattern, and nothing
    matching is a terminating ObjectNotFound (NEON Commands/ParameterResolvers.cs FilterNetworkAdaptersByName)."""
    found = [(vm, nic) for vm in vms for nic in vm.config.network_adapters]
    name = args.get("Name")
    if name:
        found = [(vm, nic) for vm, nic in found if wildcard_match(str(name), nic.name)]
        if not found:
            ctx.fail(
                HostError(
                    "No network adapter was found with the given criteria.",
                    error_id="ObjectNotFound",
                    category="ObjectNotFound",
                )
            )
    return found


def _get_nic(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm, nic in _by_name(ctx, args, _vms(ctx, args)):
        ctx.write(network_adapter_object(ctx.host, vm, nic))


def _adapters(ctx: CommandContext, args: dict[str, object]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    found: list[tuple[uuid.UUID, uuid.UUID]] = []
    for obj in args.get("VMNetworkAdapter", []):  # type: ignore[attr-defined]
        if not (isinstance(obj, PSObject) and obj.PSTypeNames[:1] == [f"{NS}.VMNetworkAdapter"]):
            raise HostError(
                f"Cannot bind parameter 'VMNetworkAdapter'. Cannot convert the \"{obj}\" value to type "
                f'"{NS}.VMNetworkAdapter".',
                error_id="CannotConvertArgument",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        found.append((uuid.UUID(int=obj.VMId.int), uuid.UUID(str(obj.AdapterId))))
    if "VMName" in args:
        found += [(vm.id, nic.adapter_id) for vm, nic in _by_name(ctx, args, _vms(ctx, args))]
    return found


def _remove_nic(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm_id, adapter_id in _adapters(ctx, args):
        ctx.host.network.remove_network_adapter(vm_id, adapter_id)


def _connect_nic(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm_id, adapter_id in _adapters(ctx, args):
        ctx.host.network.connect_network_adapter(vm_id, adapter_id, args.get("SwitchName"))  # type: ignore[arg-type]


def _disconnect_nic(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm_id, adapter_id in _adapters(ctx, args):
        ctx.host.network.connect_network_adapter(vm_id, adapter_id, None)


_VM_BY_NAME = (Param("VMName", "str[]", position=0), Param("VM", "object[]", pipeline=True))
# The adapter parameter sets shared by Remove-, Connect- and Disconnect-VMNetworkAdapter.
_NIC_TARGET = (
    Param("VMName", "str[]", position=0),
    Param("VMNetworkAdapter", "object[]", pipeline=True),
    Param("Name", "str"),
)

CMDLETS = (
    Cmdlet(
        "New-VHD",
        f"{VHD_CMD}.NewVhd",
        (
            Param("Path", "str[]", position=0),
            Param("SizeBytes", "int", position=1),
            Param("Dynamic", "switch"),
            Param("Fixed", "switch"),
            Param("Differencing", "switch"),
            Param("ParentPath", "str"),
            Param("BlockSizeBytes", "int"),
        ),
        _new_vhd,
    ),
    Cmdlet(
        "Get-VHD",
        f"{VHD_CMD}.GetVhd",
        (Param("Path", "str[]", position=0, aliases=("FullName",), by_property=True), Param("VMId", "guid")),
        _get_vhd,
    ),
    Cmdlet(
        "Remove-Item",
        "Microsoft.PowerShell.Commands.RemoveItemCommand",
        (Param("Path", "str[]", position=0, aliases=("LiteralPath",)), Param("Force", "switch")),
        _remove_item,
        aliases=("del", "rm"),
    ),
    Cmdlet(
        "Test-Path",
        "Microsoft.PowerShell.Commands.TestPathCommand",
        (Param("Path", "str[]", position=0, aliases=("LiteralPath",)),),
        _test_path,
    ),
    Cmdlet(
        "Add-VMHardDiskDrive",
        f"{CMD}.AddVMHardDiskDrive",
        (
            *_VM_BY_NAME,
            Param("Path", "str", position=4),
            Param("ControllerType", "choice", position=1, choices=("IDE", "SCSI")),
            Param("ControllerNumber", "int", position=2),
            Param("ControllerLocation", "int", position=3),
            Param("DiskNumber", "int", aliases=("Number",)),
            Param("Passthru", "switch"),
        ),
        _add_hdd,
    ),
    Cmdlet(
        "Get-VMHardDiskDrive",
        f"{CMD}.GetVMHardDiskDrive",
        (
            Param("VMName", "str[]", position=0),
            Param("VMSnapshot", "object[]", pipeline=True, pipeline_type=f"{NS}.VMSnapshot"),
            Param("VM", "object[]", pipeline=True),
            Param("ControllerType", "choice", choices=("IDE", "SCSI")),
            Param("ControllerNumber", "int"),
            Param("ControllerLocation", "int"),
        ),
        _get_hdd,
    ),
    Cmdlet(
        "Remove-VMHardDiskDrive",
        f"{CMD}.RemoveVMHardDiskDrive",
        (
            Param("VMName", "str[]", position=0),
            Param("VMHardDiskDrive", "object[]", pipeline=True),
            Param("ControllerType", "choice", position=1, choices=("IDE", "SCSI")),
            Param("ControllerNumber", "int", position=2),
            Param("ControllerLocation", "int", position=3),
        ),
        _remove_drive(False, f"{NS}.HardDiskDrive", "VMHardDiskDrive"),  # type: ignore[arg-type]
    ),
    Cmdlet(
        "Add-VMDvdDrive",
        f"{CMD}.AddVMDvdDrive",
        (*_VM_BY_NAME, Param("Path", "str"), Param("Passthru", "switch")),
        _add_dvd,
    ),
    Cmdlet("Get-VMDvdDrive", f"{CMD}.GetVMDvdDrive", _VM_BY_NAME, _get_dvd),
    Cmdlet(
        "Set-VMDvdDrive",
        f"{CMD}.SetVMDvdDrive",
        (
            Param("VMName", "str[]", position=0),
            Param("VMDvdDrive", "object[]", pipeline=True),
            Param("ControllerNumber", "int"),
            Param("ControllerLocation", "int"),
            Param("Path", "str"),
            Param("Passthru", "switch"),
        ),
        _set_dvd,
    ),
    Cmdlet(
        "Remove-VMDvdDrive",
        f"{CMD}.RemoveVMDvdDrive",
        (
            Param("VMName", "str[]", position=0),
            Param("VMDvdDrive", "object[]", pipeline=True),
            Param("ControllerNumber", "int", position=1),
            Param("ControllerLocation", "int", position=2),
        ),
        _remove_drive(True, f"{NS}.DvdDrive", "VMDvdDrive"),  # type: ignore[arg-type]
    ),
    Cmdlet(
        "Add-VMNetworkAdapter",
        f"{CMD}.AddVMNetworkAdapter",
        (
            *_VM_BY_NAME,
            Param("Name", "str"),
            Param("SwitchName", "str"),
            Param("StaticMacAddress", "str"),
            Param("IsLegacy", "bool"),
            Param("Passthru", "switch"),
        ),
        _add_nic,
    ),
    Cmdlet("Get-VMNetworkAdapter", f"{CMD}.GetVMNetworkAdapter", (*_VM_BY_NAME, Param("Name", "str")), _get_nic),
    Cmdlet(
        "Remove-VMNetworkAdapter",
        f"{CMD}.RemoveVMNetworkAdapter",
        _NIC_TARGET,
        _remove_nic,
    ),
    Cmdlet(
        "Connect-VMNetworkAdapter",
        f"{CMD}.ConnectVMNetworkAdapter",
        (*_NIC_TARGET, Param("SwitchName", "str", position=1)),
        _connect_nic,
    ),
    Cmdlet(
        "Disconnect-VMNetworkAdapter",
        f"{CMD}.DisconnectVMNetworkAdapter",
        _NIC_TARGET,
        _disconnect_nic,
    ),
)
