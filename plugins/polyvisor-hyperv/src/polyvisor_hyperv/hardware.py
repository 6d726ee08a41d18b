"""A VM's TPM, nested virtualization and assigned host devices on Hyper-V: the spec checked, the cmdlets that set
them on a new VM, the host's assignable devices as values, and the VM's settings read back.

* TPM: ``Set-VMKeyProtector -NewLocalKeyProtector`` then ``Enable-VMTPM`` (Generation 2 only; Hyper-V has one TPM
  model, so a spec's ``tpm.model`` is refused).
* Nested virtualization: ``Set-VMProcessor -ExposeVirtualizationExtensions $true`` while the new VM is still Off;
  refused with dynamic memory (Microsoft's nested virtualization guidance).
* Host devices (Discrete Device Assignment, PCI Express only: no USB): ``Set-VM -AutomaticStopAction TurnOff`` and
  ``Add-VMAssignableDevice -LocationPath``; refused with dynamic memory. ``Get-VMHostAssignableDevice`` lists the
  devices the host has dismounted and no VM has; ``Get-VM | Get-VMAssignableDevice`` the ones VMs have.

Every value travels as a typed parameter (:mod:`.commands`), never as script text.
"""

from __future__ import annotations

from polyvisor.errors import ValidationError
from polyvisor.model import HostDevice, HostDeviceKind, VMSpec, device_facts
from polyvisor_hyperv.client import HyperVClient, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step

__all__ = ["Hardware", "check_hardware", "hardware_steps"]


def check_hardware(spec: VMSpec) -> None:
    """Refuse what Hyper-V cannot give this spec, before anything is created."""
    if spec.tpm is not None and spec.generation != 2:
        raise ValidationError(
            "Hyper-V gives a TPM to Generation 2 VMs only; set firmware='uefi' (Generation 2) or drop tpm",
            field="tpm",
        )
    if spec.tpm is not None and spec.tpm.model is not None:
        raise ValidationError(
            f"Hyper-V has one virtual TPM and no models to choose from; drop tpm.model ({spec.tpm.model.value!r})",
            field="tpm.model",
        )
    if spec.nested_virtualization and spec.dynamic_memory is not None:
        raise ValidationError(
            "Hyper-V exposes virtualization extensions only to a VM without dynamic memory (a VM that runs a "
            "hypervisor must be off to change its memory); drop dynamic_memory or nested_virtualization",
            field="nested_virtualization",
        )
    if spec.host_devices and spec.dynamic_memory is not None:
        raise ValidationError(
            "Hyper-V assigns host devices (Discrete Device Assignment) only to a VM without dynamic memory; drop "
            "dynamic_memory or host_devices",
            field="host_devices",
        )


def hardware_steps(uuid: str, spec: VMSpec) -> list[Step]:
    """The steps that give a new (Off) VM the spec's TPM, nested virtualization and host devices."""
    vm = vm_step(uuid)
    steps: list[Step] = []
    if spec.tpm is not None:
        steps += [vm, then("Set-VMKeyProtector", NewLocalKeyProtector=SWITCH), vm, then("Enable-VMTPM")]
    if spec.nested_virtualization:
        steps += [vm, then("Set-VMProcessor", ExposeVirtualizationExtensions=True)]
    if spec.host_devices:
        steps += [vm, then("Set-VM", AutomaticStopAction="TurnOff")]
        for path in spec.host_devices:
            steps += [vm, then("Add-VMAssignableDevice", LocationPath=path)]
    return steps


class Hardware:
    """The host's assignable devices, and what a VM has of TPM, nested virtualization and devices."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    def host_devices(self) -> list[HostDevice]:
        """The devices the host dismounted for assignment (free), then those VMs have (each naming its VM)."""
        free = self._client.run(
            [Step("Get-VMHostAssignableDevice")],
            doing="listing assignable devices (Get-VMHostAssignableDevice)",
            select=("LocationPath", "InstanceID", "Name"),
        )
        assigned = self._client.run(
            [Step("Get-VM"), then("Get-VMAssignableDevice")],
            doing="listing assigned devices (Get-VMAssignableDevice)",
            select=("LocationPath", "InstanceID", "Name", "VMName"),
        )
        devices = {}
        for row in [*free, *assigned]:
            path = as_text(row.get("LocationPath"))
            user = as_text(row.get("VMName")) or None
            extra = {"instance_id": as_text(row.get("InstanceID"))}
            devices[path] = HostDevice(
                path, HostDeviceKind.PCI, as_text(row.get("Name")), path, used_by=user, extra=extra
            )
        return sorted(devices.values(), key=lambda device: device.name)

    def facts(self, uuid: str, generation: int) -> dict[str, object]:
        """The VM's TPM (Generation 2), exposed virtualization extensions and assigned devices, for ``info().extra``."""
        tpm = None
        if generation == 2:
            rows = self._client.run(
                [vm_step(uuid), then("Get-VMSecurity")], doing="reading the VM's TPM", vm=uuid, select=("TpmEnabled",)
            )
            tpm = "2.0" if rows and rows[0].get("TpmEnabled") is True else None
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMProcessor")],
            doing="reading the VM's processor",
            vm=uuid,
            select=("ExposeVirtualizationExtensions",),
        )
        nested = bool(rows and rows[0].get("ExposeVirtualizationExtensions") is True)
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMAssignableDevice")],
            doing="reading the VM's assigned devices",
            vm=uuid,
            select=("LocationPath",),
        )
        return device_facts(tpm, nested, [as_text(row.get("LocationPath")) for row in rows])
