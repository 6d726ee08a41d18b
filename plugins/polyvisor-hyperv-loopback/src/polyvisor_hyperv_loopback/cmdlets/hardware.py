"""Cmdlets for a VM's TPM, processor and assigned devices: Set-/Get-VMKeyProtector, Enable-VMTPM, Get-VMSecurity,
Get-VMProcessor, Get-VMHostAssignableDevice, Get-/Add-VMAssignableDevice (the model: ``hyperv/hardware.py``).

Set-VMProcessor (in ``provisioning``) takes ``-ExposeVirtualizationExtensions`` through the same model.
"""

from __future__ import annotations

from psrpcore.types import PSNoteProperty, PSObject, PSPropertyInfo, PSType

from polyvisor_hyperv_loopback.hyperv import VMRecord
from polyvisor_hyperv_loopback.hyperv.hardware import AssignableDevice
from polyvisor_hyperv_loopback.hyperv.host import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import HostError

from .base import Cmdlet, CommandContext, Param
from .vm import resolve_vms

__all__ = ["CMDLETS"]

NS = "Microsoft.HyperV.PowerShell"
CMD = f"{NS}.Commands"


def _properties(*names: str) -> list[PSPropertyInfo]:
    return [PSNoteProperty(name) for name in names]


@PSType(
    [f"{NS}.VMSecurity", f"{NS}.VirtualizationObject"],
    adapted_properties=_properties(
        "TpmEnabled",
        "KsdEnabled",
        "Shielded",
        "EncryptStateAndVmMigrationTraffic",
        "VirtualizationBasedSecurityOptOut",
        "VMId",
        "VMName",
        "ComputerName",
    ),
    rehydrate=False,
)
class VMSecurity(PSObject):
    """Microsoft.HyperV.PowerShell.VMSecurity."""


@PSType(
    [f"{NS}.VMProcessor", f"{NS}.VMDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=_properties(
        "Count",
        "ExposeVirtualizationExtensions",
        "Name",
        "VMId",
        "VMName",
        "ComputerName",
    ),
    rehydrate=False,
)
class VMProcessor(PSObject):
    """Microsoft.HyperV.PowerShell.VMProcessor."""


@PSType(
    [f"{NS}.VMHostAssignableDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=_properties(
        "InstanceID",
        "LocationPath",
        "Name",
        "ResourcePoolName",
        "ComputerName",
    ),
    rehydrate=False,
)
class VMHostAssignableDevice(PSObject):
    """Microsoft.HyperV.PowerShell.VMHostAssignableDevice."""


@PSType(
    [f"{NS}.VMAssignedDevice", f"{NS}.VMDevice", f"{NS}.VirtualizationObject"],
    adapted_properties=_properties(
        "InstanceID",
        "LocationPath",
        "Name",
        "ResourcePoolName",
        "VMId",
        "VMName",
        "ComputerName",
    ),
    rehydrate=False,
)
class VMAssignedDevice(PSObject):
    """Microsoft.HyperV.PowerShell.VMAssignedDevice."""


def _security(host: HyperVHost, vm: VMRecord) -> VMSecurity:
    return VMSecurity(
        TpmEnabled=vm.config.tpm_enabled,
        KsdEnabled=False,
        Shielded=False,
        EncryptStateAndVmMigrationTraffic=False,
        VirtualizationBasedSecurityOptOut=False,
        VMId=vm.id,
        VMName=vm.name,
        ComputerName=host.computer_name,
    )


def _processor(host: HyperVHost, vm: VMRecord) -> VMProcessor:
    return VMProcessor(
        Count=vm.config.processor_count,
        ExposeVirtualizationExtensions=vm.config.expose_virtualization_extensions,
        Name="Processor",
        VMId=vm.id,
        VMName=vm.name,
        ComputerName=host.computer_name,
    )


def _host_device(host: HyperVHost, device: AssignableDevice) -> VMHostAssignableDevice:
    return VMHostAssignableDevice(
        InstanceID=device.instance_id,
        LocationPath=device.location_path,
        Name=device.name,
        ResourcePoolName="Primordial",
        ComputerName=host.computer_name,
    )


def _set_key_protector(ctx: CommandContext, args: dict[str, object]) -> None:
    if not args.get("NewLocalKeyProtector"):
        ctx.fail(
            HostError(
                "This host sets local key protectors only: pass -NewLocalKeyProtector.",
                error_id="NotSupported",
                category="NotImplemented",
                exception_type="System.NotSupportedException",
            )
        )
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        if ctx.should_process(high_impact=False):
            ctx.host.hardware.set_key_protector(vm.id)


def _get_key_protector(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        protector = ctx.host.get_vm(vm.id).config.key_protector
        ctx.write(protector if protector is not None else b"\x00\x00\x00\x04")  # "no key protector": 4 bytes


def _tpm(enabled: bool) -> object:
    def body(ctx: CommandContext, args: dict[str, object]) -> None:
        for vm in resolve_vms(ctx, args, name_param="VMName"):
            if ctx.should_process(high_impact=False):
                ctx.host.hardware.enable_tpm(vm.id, enabled)

    return body


def _get_security(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        ctx.write(_security(ctx.host, ctx.host.get_vm(vm.id)))


def _get_processor(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        ctx.write(_processor(ctx.host, ctx.host.get_vm(vm.id)))


def _get_host_assignable(ctx: CommandContext, args: dict[str, object]) -> None:
    wanted = args.get("LocationPath")
    for device in ctx.host.hardware.free_devices():
        if wanted is None or str(wanted).casefold() == device.location_path.casefold():
            ctx.write(_host_device(ctx.host, device))


def _get_assigned(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        record = ctx.host.get_vm(vm.id)
        for path in record.config.assigned_devices:
            device = ctx.host.hardware.device(path)
            ctx.write(
                VMAssignedDevice(
                    InstanceID=device.instance_id if device else "",
                    LocationPath=path,
                    Name=device.name if device else "",
                    ResourcePoolName="Primordial",
                    VMId=record.id,
                    VMName=record.name,
                    ComputerName=ctx.host.computer_name,
                )
            )


def _add_assignable(ctx: CommandContext, args: dict[str, object]) -> None:
    path = args.get("LocationPath")
    if not path:
        ctx.fail(
            HostError(
                "Cannot process command because of one or more missing mandatory parameters: LocationPath.",
                error_id="MissingMandatoryParameter",
                category="InvalidArgument",
                exception_type="System.Management.Automation.ParameterBindingException",
            )
        )
    for vm in resolve_vms(ctx, args, name_param="VMName"):
        if ctx.should_process(high_impact=False):
            ctx.host.hardware.add_assignable_device(vm.id, str(path))


_VM = (Param("VMName", "str[]", position=0), Param("VM", "object[]", pipeline=True), Param("Passthru", "switch"))

CMDLETS = (
    Cmdlet(
        "Set-VMKeyProtector",
        f"{CMD}.SetVMKeyProtector",
        (*_VM, Param("NewLocalKeyProtector", "switch")),
        _set_key_protector,
    ),
    Cmdlet("Get-VMKeyProtector", f"{CMD}.GetVMKeyProtector", _VM, _get_key_protector),
    Cmdlet("Enable-VMTPM", f"{CMD}.EnableVMTPM", _VM, _tpm(True)),  # type: ignore[arg-type]
    Cmdlet("Disable-VMTPM", f"{CMD}.DisableVMTPM", _VM, _tpm(False)),  # type: ignore[arg-type]
    Cmdlet("Get-VMSecurity", f"{CMD}.GetVMSecurity", _VM, _get_security),
    Cmdlet("Get-VMProcessor", f"{CMD}.GetVMProcessor", _VM, _get_processor),
    Cmdlet(
        "Get-VMHostAssignableDevice",
        f"{CMD}.GetVMHostAssignableDevice",
        (Param("LocationPath", "str"), Param("InstancePath", "str")),
        _get_host_assignable,
    ),
    Cmdlet(
        "Get-VMAssignableDevice", f"{CMD}.GetVMAssignableDevice", (*_VM, Param("LocationPath", "str")), _get_assigned
    ),
    Cmdlet(
        "Add-VMAssignableDevice",
        f"{CMD}.AddVMAssignableDevice",
        (*_VM, Param("LocationPath", "str"), Param("InstancePath", "str")),
        _add_assignable,
    ),
)
