"""Hyper-V VM cmdlets: lifecycle, configuration, checkpoints, firmware and host information."""

from __future__ import annotations

import contextlib
import uuid

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.hyperv import AlreadyInState, SnapshotRecord, VMRecord, require_generation_2
from polyvisor_hyperv_loopback.powershell.errors import HostError

from .base import Cmdlet, CommandContext, Param
from .objects import firmware_object, host_object, snapshot_object, vm_object

__all__ = ["CMDLETS", "resolve_vms"]

NS = "Microsoft.HyperV.PowerShell"
CMD = f"{NS}.Commands"


def _wrong_type(param: str, value: object, type_name: str) -> HostError:
    shown = value.PSTypeNames[0] if isinstance(value, PSObject) else type(value).__name__
    return HostError(
        f'Cannot bind parameter \'{param}\'. Cannot convert the "{value}" value of type "{shown}" to type '
        f'"{type_name}".',
        error_id="CannotConvertArgument",
        category="InvalidArgument",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


def _typed(value: object, type_name: str) -> bool:
    # Deserialized objects do not bind to live .NET types, exactly as on Windows.
    return isinstance(value, PSObject) and value.PSTypeNames[:1] == [type_name]


def resolve_vms(ctx: CommandContext, args: dict[str, object], name_param: str = "Name") -> list[VMRecord]:
    """Return the VMs named by -VM objects, -Name (wildcards) or -Id; unknown names are written as errors."""
    found: list[VMRecord] = []
    for obj in args.get("VM", []):  # type: ignore[attr-defined]
        if not _typed(obj, f"{NS}.VirtualMachine"):
            raise _wrong_type("VM", obj, f"{NS}.VirtualMachine")
        found.append(ctx.host.get_vm(uuid.UUID(int=obj.Id.int)))
    # Get-VM writes a name that matches nothing as InvalidArgument, every other cmdlet as ObjectNotFound.
    object_not_found = ctx.cmdlet.name.casefold() != "get-vm"
    for name in args.get(name_param, []):  # type: ignore[attr-defined]
        try:
            found.extend(ctx.host.find_vms(name, object_not_found=object_not_found))
        except HostError as exc:
            ctx.write_error(exc)
    if "Id" in args:
        try:  # a missing Id is ObjectNotFound, written as a non-terminating error (SelectWithLogging)
            found.append(ctx.host.get_vm(args["Id"]))  # type: ignore[arg-type]
        except HostError as exc:
            ctx.write_error(exc)
    return found


def _target_vms(ctx: CommandContext, args: dict[str, object]) -> list[VMRecord]:
    if not any(k in args for k in ("VM", "Name", "VMName", "Id")):
        ctx.fail(
            HostError(
                "Cannot process command because of one or more missing mandatory parameters: Name.",
                error_id="MissingMandatoryParameter",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        )
    return resolve_vms(ctx, args)


def _emit_vm(ctx: CommandContext, vm: VMRecord) -> None:
    ctx.write(vm_object(ctx.host, ctx.host.get_vm(vm.id)))


def _get_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    vms = resolve_vms(ctx, args) if ("Name" in args or "Id" in args) else ctx.host.list_vms()
    for vm in vms:
        ctx.write(vm_object(ctx.host, vm))


def _new_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    name = str(args.get("Name") or "New Virtual Machine")
    generation = int(args.get("Generation", 1))  # type: ignore[call-overload]
    if generation not in (1, 2):
        ctx.fail(
            HostError(
                f"Cannot validate argument on parameter 'Generation'. The {generation} argument is greater than "
                "the maximum allowed range of 2. Supply an argument that is less than or equal to 2 and then "
                "try the command again.",
                error_id="ParameterArgumentValidationError",
                category="InvalidData",
                exception_type="System.Management.Automation.ParameterBindingValidationException",
            )
        )
    disk_modes = [k for k in ("NewVHDPath", "VHDPath", "NoVHD") if k in args and args[k] is not False]
    if len(disk_modes) > 1:
        ctx.fail(
            HostError(
                "Parameter set cannot be resolved using the specified named parameters.",
                error_id="AmbiguousParameterSet",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        )
    boot = args.get("BootDevice")
    if boot is not None:
        valid = ("CD", "IDE", "LegacyNetworkAdapter", "Floppy") if generation == 1 else ("VHD", "NetworkAdapter", "CD")
        if boot not in valid:
            ctx.fail(
                HostError(
                    f"The boot device '{boot}' is not valid for a Generation {generation} virtual machine.",
                    error_id="InvalidParameter",
                    category="InvalidArgument",
                    target_name=name,
                )
            )
    if not ctx.should_process(high_impact=False):
        return
    vm = ctx.host.lifecycle.new_vm(
        name,
        generation=generation,
        memory_startup=args.get("MemoryStartupBytes"),  # type: ignore[arg-type]
        path=args.get("Path"),  # type: ignore[arg-type]
        new_vhd_path=args.get("NewVHDPath"),  # type: ignore[arg-type]
        new_vhd_size=args.get("NewVHDSizeBytes"),  # type: ignore[arg-type]
        vhd_path=args.get("VHDPath"),  # type: ignore[arg-type]
        switch_name=args.get("SwitchName"),  # type: ignore[arg-type]
        boot_device=boot,  # type: ignore[arg-type]
        version=str(args.get("Version", "10.0")),
    )
    ctx.write(vm_object(ctx.host, vm))


_SET_VM_MAP = {
    "ProcessorCount": "processor_count",
    "MemoryStartupBytes": "memory_startup",
    "MemoryMinimumBytes": "memory_minimum",
    "MemoryMaximumBytes": "memory_maximum",
    "Notes": "notes",
    "CheckpointType": "checkpoint_type",
    "AutomaticStopAction": "automatic_stop_action",
    "AutomaticStartAction": "automatic_start_action",
    "NewVMName": "name",
}


def _set_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    changes = {key: args[param] for param, key in _SET_VM_MAP.items() if param in args}
    if args.get("DynamicMemory"):
        changes["dynamic_memory"] = True
    if args.get("StaticMemory"):
        changes["dynamic_memory"] = False
    for vm in _target_vms(ctx, args):
        if not ctx.should_process(high_impact=False):
            continue
        updated = ctx.host.lifecycle.set_vm(vm.id, **changes)
        if args.get("Passthru"):
            _emit_vm(ctx, updated)


def _state_verb(verb: str) -> object:
    def body(ctx: CommandContext, args: dict[str, object]) -> None:
        for vm in _target_vms(ctx, args):
            force = bool(args.get("Force"))
            if not ctx.should_process(high_impact=False):
                continue
            # Restart-VM asks ShouldContinue, which only -Force answers (NEON Commands/RestartVM.cs).
            if verb == "restart" and not ctx.should_continue(force):
                continue
            try:
                _run_verb(ctx, verb, vm, args)
            except AlreadyInState as warn:
                ctx.warn(warn.message)
            if args.get("Passthru"):
                _emit_vm(ctx, vm)

    return body


def _run_verb(ctx: CommandContext, verb: str, vm: VMRecord, args: dict[str, object]) -> None:
    host = ctx.host
    if verb == "start":
        host.power.start_vm(vm.id)
    elif verb == "stop":
        if args.get("TurnOff"):
            host.power.turn_off_vm(vm.id)
        elif args.get("Save"):
            host.power.save_vm(vm.id)
        else:
            host.power.shutdown_vm(vm.id, ctx.session.cancel, force=bool(args.get("Force")))
    elif verb == "save":
        host.power.save_vm(vm.id)
    elif verb == "suspend":
        host.power.suspend_vm(vm.id)
    elif verb == "resume":
        host.power.resume_vm(vm.id)
    elif verb == "restart":
        host.power.restart_vm(vm.id)
    elif verb == "remove_saved_state":
        host.power.remove_saved_state(vm.id)


def _remove_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _target_vms(ctx, args):
        # ShouldProcess, then ShouldContinue, which only -Force answers (NEON Commands/RemoveVM.cs).
        if not ctx.should_process(high_impact=False) or not ctx.should_continue(bool(args.get("Force"))):
            continue
        if vm.state not in {"Off", "Saved"}:
            with contextlib.suppress(AlreadyInState):
                ctx.host.power.turn_off_vm(vm.id)
        ctx.host.lifecycle.remove_vm(vm.id)
        if args.get("Passthru"):
            ctx.write(vm_object(ctx.host, vm))


def _checkpoint_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _target_vms(ctx, args):
        if not ctx.should_process(high_impact=False):
            continue
        snap = ctx.host.checkpoints.checkpoint_vm(vm.id, args.get("SnapshotName"))  # type: ignore[arg-type]
        if args.get("Passthru"):
            ctx.write(snapshot_object(ctx.host, ctx.host.get_vm(vm.id), snap))


def _snapshots(ctx: CommandContext, args: dict[str, object]) -> list[tuple[VMRecord, SnapshotRecord]]:
    pairs: list[tuple[VMRecord, SnapshotRecord]] = []
    for obj in args.get("VMSnapshot", []):  # type: ignore[attr-defined]
        if not _typed(obj, f"{NS}.VMSnapshot"):
            raise _wrong_type("VMSnapshot", obj, f"{NS}.VMSnapshot")
        vm = ctx.host.get_vm(uuid.UUID(int=obj.VMId.int))
        pairs.extend((vm, s) for s in ctx.host.checkpoints.find_snapshots(vm.id, snapshot_id=uuid.UUID(int=obj.Id.int)))
    if "VMSnapshot" in args:
        return pairs
    if "Id" in args and not any(k in args for k in ("VM", "VMName")):
        # The Id parameter set names a checkpoint on its own, whichever VM holds it.
        try:
            pairs.append(ctx.host.checkpoints.snapshot_by_id(args["Id"]))  # type: ignore[arg-type]
        except HostError as exc:
            ctx.write_error(exc)
        return pairs
    vms = resolve_vms(ctx, args, name_param="VMName")
    if not vms and not any(k in args for k in ("VM", "VMName")):
        ctx.fail(
            HostError(
                "Cannot process command because of one or more missing mandatory parameters: VMName.",
                error_id="MissingMandatoryParameter",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        )
    names = args.get("Name") or [None]
    for vm in vms:
        for name in names:  # type: ignore[attr-defined]
            try:
                found = ctx.host.checkpoints.find_snapshots(vm.id, name=name, snapshot_id=args.get("Id"))  # type: ignore[arg-type]
            except HostError as exc:
                ctx.write_error(exc)
                continue
            pairs.extend((vm, s) for s in found)
    return pairs


def _get_snapshot(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm, snap in _snapshots(ctx, args):
        ctx.write(snapshot_object(ctx.host, ctx.host.get_vm(vm.id), snap))


def _restore_snapshot(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm, snap in _snapshots(ctx, args):
        if not ctx.should_process(high_impact=True):
            continue
        # As the cmdlet does (NEON Commands/RestoreVMSnapshot.cs): a Running or Paused VM is saved first, the
        # checkpoint applied, and a VM that was Running and is Saved afterwards is started again.
        before = ctx.host.get_vm(vm.id).state
        if before in {"Running", "Paused"}:
            ctx.host.power.save_vm(vm.id)
        try:
            ctx.host.checkpoints.restore_snapshot(vm.id, snap.id)
            if args.get("Passthru"):
                ctx.write(snapshot_object(ctx.host, ctx.host.get_vm(vm.id), snap))
        finally:
            if before == "Running" and ctx.host.get_vm(vm.id).state == "Saved":
                ctx.host.power.start_vm(vm.id)


def _remove_snapshot(ctx: CommandContext, args: dict[str, object]) -> None:
    subtree = bool(args.get("IncludeAllChildSnapshots"))
    for vm, snap in _snapshots(ctx, args):
        if not ctx.should_process(high_impact=False):
            continue
        ctx.host.checkpoints.remove_snapshot(vm.id, snap.id, subtree=subtree)
        if args.get("Passthru"):
            ctx.write(snapshot_object(ctx.host, vm, snap))


def _get_firmware(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in _target_vms(ctx, args):
        require_generation_2(vm)
        ctx.write(firmware_object(ctx.host, vm))


def _set_firmware(ctx: CommandContext, args: dict[str, object]) -> None:
    secure = args.get("EnableSecureBoot")
    for vm in _target_vms(ctx, args):
        if not ctx.should_process(high_impact=False):
            continue
        updated = ctx.host.lifecycle.set_firmware(
            vm.id,
            secure_boot=None if secure is None else secure == "On",
            template=args.get("SecureBootTemplate"),  # type: ignore[arg-type]
        )
        if args.get("Passthru"):
            ctx.write(firmware_object(ctx.host, updated))


def _get_vmhost(ctx: CommandContext, args: dict[str, object]) -> None:
    ctx.write(host_object(ctx.host))


_VM_TARGET = (
    Param("Name", "str[]", aliases=("VMName",), position=0),
    Param("VM", "object[]", pipeline=True),
    Param("Passthru", "switch"),
)
_SNAP_TARGET = (
    Param("VMName", "str[]", position=0),
    Param("VM", "object[]"),
    Param("Name", "str[]", position=1, aliases=("SnapshotName",)),
    Param("VMSnapshot", "object[]", pipeline=True, aliases=("VMCheckpoint",)),
    Param("Passthru", "switch"),
)

CMDLETS = (
    Cmdlet(
        "Get-VM",
        f"{CMD}.GetVM",
        (Param("Name", "str[]", aliases=("VMName",), position=0), Param("Id", "guid")),
        _get_vm,
    ),
    Cmdlet(
        "New-VM",
        f"{CMD}.NewVM",
        (
            Param("Name", "str", aliases=("VMName",), position=0),
            Param("MemoryStartupBytes", "int", position=1),
            Param("Generation", "int", position=2),
            Param(
                "BootDevice", "choice", choices=("Floppy", "CD", "IDE", "LegacyNetworkAdapter", "NetworkAdapter", "VHD")
            ),
            Param("SwitchName", "str"),
            Param("NewVHDPath", "str"),
            Param("NewVHDSizeBytes", "int"),
            Param("VHDPath", "str"),
            Param("NoVHD", "switch"),
            Param("Path", "str"),
            Param("Version", "str"),
        ),
        _new_vm,
    ),
    Cmdlet(
        "Set-VM",
        f"{CMD}.SetVM",
        (
            *_VM_TARGET,
            Param("ProcessorCount", "int"),
            Param("MemoryStartupBytes", "int"),
            Param("MemoryMinimumBytes", "int"),
            Param("MemoryMaximumBytes", "int"),
            Param("DynamicMemory", "switch"),
            Param("StaticMemory", "switch"),
            Param("Notes", "str"),
            Param("NewVMName", "str"),
            Param("CheckpointType", "choice", choices=("Disabled", "Production", "ProductionOnly", "Standard")),
            Param("AutomaticStopAction", "choice", choices=("TurnOff", "Save", "ShutDown")),
            Param("AutomaticStartAction", "choice", choices=("Nothing", "StartIfRunning", "Start")),
        ),
        _set_vm,
    ),
    Cmdlet("Start-VM", f"{CMD}.StartVM", _VM_TARGET, _state_verb("start")),  # type: ignore[arg-type]
    Cmdlet(
        "Stop-VM",
        f"{CMD}.StopVM",
        (*_VM_TARGET, Param("Force", "switch"), Param("TurnOff", "switch"), Param("Save", "switch")),
        _state_verb("stop"),  # type: ignore[arg-type]
    ),
    Cmdlet("Save-VM", f"{CMD}.SaveVM", _VM_TARGET, _state_verb("save")),  # type: ignore[arg-type]
    Cmdlet("Suspend-VM", f"{CMD}.SuspendVM", _VM_TARGET, _state_verb("suspend")),  # type: ignore[arg-type]
    Cmdlet("Resume-VM", f"{CMD}.ResumeVM", _VM_TARGET, _state_verb("resume")),  # type: ignore[arg-type]
    Cmdlet(
        "Restart-VM",
        f"{CMD}.RestartVM",
        # No -Type: the Server 2016-2025 references list none (DOCS Restart-VM.md), so a host binds it as unknown.
        (*_VM_TARGET, Param("Force", "switch")),
        _state_verb("restart"),  # type: ignore[arg-type]
    ),
    Cmdlet("Remove-VMSavedState", f"{CMD}.RemoveVMSavedState", _VM_TARGET, _state_verb("remove_saved_state")),  # type: ignore[arg-type]
    Cmdlet("Remove-VM", f"{CMD}.RemoveVM", (*_VM_TARGET, Param("Force", "switch")), _remove_vm),
    Cmdlet(
        "Checkpoint-VM",
        f"{CMD}.CheckpointVM",
        (*_VM_TARGET, Param("SnapshotName", "str", position=1, aliases=("CheckpointName",))),
        _checkpoint_vm,
    ),
    Cmdlet(
        "Get-VMSnapshot",
        f"{CMD}.GetVMSnapshot",
        (
            Param("VMName", "str[]", position=0),
            Param("VM", "object[]", pipeline=True),
            Param("Name", "str[]", position=1),
            Param("Id", "guid"),
        ),
        _get_snapshot,
        aliases=("Get-VMCheckpoint",),
    ),
    Cmdlet(
        "Restore-VMSnapshot",
        f"{CMD}.RestoreVMSnapshot",
        _SNAP_TARGET,
        _restore_snapshot,
        aliases=("Restore-VMCheckpoint",),
    ),
    Cmdlet(
        "Remove-VMSnapshot",
        f"{CMD}.RemoveVMSnapshot",
        (*_SNAP_TARGET, Param("IncludeAllChildSnapshots", "switch", aliases=("IncludeAllChildCheckpoints",))),
        _remove_snapshot,
        aliases=("Remove-VMCheckpoint",),
    ),
    Cmdlet("Get-VMFirmware", f"{CMD}.GetVMFirmware", _VM_TARGET, _get_firmware),
    Cmdlet(
        "Set-VMFirmware",
        f"{CMD}.SetVMFirmware",
        (
            *_VM_TARGET,
            Param("EnableSecureBoot", "choice", choices=("On", "Off")),
            Param("SecureBootTemplate", "str"),
        ),
        _set_firmware,
    ),
    Cmdlet("Get-VMHost", f"{CMD}.GetVMHost", (), _get_vmhost),
)
