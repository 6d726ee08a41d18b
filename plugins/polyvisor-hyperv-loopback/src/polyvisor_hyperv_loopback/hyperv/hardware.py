"""Hardware a VM can be given beyond disks and NICs: a virtual TPM, the processor's virtualization extensions
(nested virtualization) and host PCI Express devices (Discrete Device Assignment).

Rules, as Microsoft documents them (the fidelity ledger, docs/hyperv-fidelity.md, gives each source):

* A TPM is enabled with ``Enable-VMTPM`` once the VM has a key protector (``Set-VMKeyProtector
  -NewLocalKeyProtector`` makes a local one); Generation 2 VMs only. Refused on Generation 1, without a key
  protector, and while the VM is not Off (the error texts are ours: ASSUMPTION).
* ``Set-VMProcessor -ExposeVirtualizationExtensions $true`` only while the VM is Off ("Run Hyper-V in a Virtual
  Machine with Nested Virtualization"); refused while dynamic memory is on (ASSUMPTION: the Windows 10 and
  Server 2016 previews' guidance; the current page says memory does not fluctuate).
* ``Add-VMAssignableDevice -LocationPath`` assigns a device the host has dismounted (``Get-VMHostAssignableDevice``
  lists those not assigned to a VM) to a VM that is Off, whose automatic stop action is TurnOff and which has no
  dynamic memory ("Deploy graphics devices using Discrete Device Assignment", "Plan for deploying devices using
  Discrete Device Assignment"). A device assigned to one VM is not offered to another.
"""

from __future__ import annotations

import copy
import os
import uuid
from dataclasses import dataclass

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .faults import modify_failed, not_running_detail
from .records import VMRecord
from .state import HostState

__all__ = ["DEFAULT_ASSIGNABLE_DEVICES", "AssignableDevice", "Hardware"]


@dataclass(frozen=True)
class AssignableDevice:
    """A PCI Express device the host has dismounted for assignment (Dismount-VMHostAssignableDevice)."""

    location_path: str
    instance_id: str
    name: str


DEFAULT_ASSIGNABLE_DEVICES = (
    AssignableDevice(
        "PCIROOT(0)#PCI(0300)#PCI(0000)",
        "PCIP\\VEN_10DE&DEV_1EB8&SUBSYS_12A210DE&REV_A1\\4&2A3B1C5D&0&0018",
        "NVIDIA Tesla T4",
    ),
    AssignableDevice(
        "PCIROOT(0)#PCI(1D00)#PCI(0000)",
        "PCIP\\VEN_144D&DEV_A808&SUBSYS_A801144D&REV_00\\4&1F2E3D4C&0&00E8",
        "Samsung NVMe SSD Controller",
    ),
)
"""The devices a new loopback host has dismounted, ready to assign."""


def _refused(vm: VMRecord, message: str) -> HostError:
    return HostError(message, error_id="InvalidParameter", category="InvalidArgument", target_name=vm.name)


class Hardware:
    """A VM's TPM, processor virtualization extensions and assigned host devices."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition
        self.assignable: dict[str, AssignableDevice] = {
            d.location_path.casefold(): d for d in DEFAULT_ASSIGNABLE_DEVICES
        }
        """The devices the host has dismounted, by location path (case-insensitive)."""

    def _off(self, vm: VMRecord, device: str) -> None:
        if vm.state != "Off":
            raise modify_failed(vm, device, not_running_detail())

    def set_key_protector(self, vm_id: uuid.UUID) -> VMRecord:
        """Set-VMKeyProtector -NewLocalKeyProtector."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.generation != 2:
                raise _refused(vm, f"Generation 1 virtual machines do not support key protectors: '{vm.name}'.")
            vm.config.key_protector = os.urandom(32)
            return copy.deepcopy(vm)

    def enable_tpm(self, vm_id: uuid.UUID, enabled: bool = True) -> VMRecord:
        """Enable-VMTPM (or Disable-VMTPM)."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.generation != 2:
                raise _refused(vm, f"Generation 1 virtual machines do not support a virtual TPM: '{vm.name}'.")
            self._off(vm, "Microsoft Virtual TPM")
            if enabled and vm.config.key_protector is None:
                raise modify_failed(
                    vm,
                    "Microsoft Virtual TPM",
                    "The virtual machine has no key protector. Set one with Set-VMKeyProtector first.",
                )
            vm.config.tpm_enabled = enabled
            return copy.deepcopy(vm)

    def expose_virtualization_extensions(self, vm_id: uuid.UUID, expose: bool) -> VMRecord:
        """Set-VMProcessor -ExposeVirtualizationExtensions."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if expose != vm.config.expose_virtualization_extensions:
                self._off(vm, "Processor")
            if expose and vm.config.dynamic_memory:
                raise modify_failed(
                    vm,
                    "Processor",
                    "Virtualization extensions cannot be exposed to a virtual machine with dynamic memory enabled.",
                )
            vm.config.expose_virtualization_extensions = expose
            return copy.deepcopy(vm)

    def free_devices(self) -> list[AssignableDevice]:
        """Get-VMHostAssignableDevice: the dismounted devices no VM has."""
        with self._cond:
            taken = {path.casefold() for vm in self._state.vms.values() for path in vm.config.assigned_devices}
            return [device for key, device in sorted(self.assignable.items()) if key not in taken]

    def device(self, location_path: str) -> AssignableDevice | None:
        with self._cond:
            return self.assignable.get(location_path.casefold())

    def add_assignable_device(self, vm_id: uuid.UUID, location_path: str) -> VMRecord:
        """Add-VMAssignableDevice -LocationPath."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            device = self.assignable.get(location_path.casefold())
            if device is None:
                raise HostError(
                    f"The device at location path '{location_path}' is not dismounted from the host and cannot be "
                    "assigned. Dismount it with Dismount-VMHostAssignableDevice first.",
                    error_id="ObjectNotFound",
                    category="ObjectNotFound",
                    target_name=location_path,
                )
            for other in self._state.vms.values():
                if device.location_path.casefold() in (path.casefold() for path in other.config.assigned_devices):
                    raise HostError(
                        f"The device at location path '{device.location_path}' is already assigned to the virtual "
                        f"machine '{other.name}'.",
                        error_id="InvalidState",
                        category="ResourceBusy",
                        target_name=location_path,
                    )
            self._off(vm, "PCI Express Port")
            if vm.config.automatic_stop_action != "TurnOff":
                raise modify_failed(
                    vm,
                    "PCI Express Port",
                    "A virtual machine with an assigned device needs its automatic stop action set to TurnOff "
                    "(Set-VM -AutomaticStopAction TurnOff).",
                )
            if vm.config.dynamic_memory:
                raise modify_failed(
                    vm, "PCI Express Port", "A device cannot be assigned to a virtual machine with dynamic memory."
                )
            vm.config.assigned_devices.append(device.location_path)
            return copy.deepcopy(vm)
