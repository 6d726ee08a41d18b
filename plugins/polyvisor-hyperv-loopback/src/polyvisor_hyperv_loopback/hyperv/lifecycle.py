"""Creating, configuring and removing VMs: New-VM, Set-VM, Set-VMFirmware, Remove-VM."""

from __future__ import annotations

import copy
import datetime
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .disks import VirtualDisks
from .faults import file_not_found, invalid_state, modify_failed, not_running_detail
from .filesystem import normalize_path
from .guest import follow_guest_label
from .network import Network
from .records import (
    SECURE_BOOT_TEMPLATES,
    TRANSITIONAL,
    VM_ROOT,
    DvdDriveRecord,
    GiB,
    HardDiskRecord,
    MiB,
    NetworkAdapterRecord,
    VMConfig,
    VMRecord,
)
from .state import HostState

__all__ = ["VMLifecycle", "require_generation_2"]


class VMLifecycle:
    """The VMs' creation, settings and removal."""

    def __init__(self, state: HostState, disks: VirtualDisks, network: Network) -> None:
        self._state = state
        self._disks = disks
        self._network = network
        self._cond = state.condition

    def new_vm(
        self,
        name: str,
        *,
        generation: int = 1,
        memory_startup: int | None = None,
        path: str | None = None,
        new_vhd_path: str | None = None,
        new_vhd_size: int | None = None,
        vhd_path: str | None = None,
        switch_name: str | None = None,
        boot_device: str | None = None,
        version: str = "10.0",
    ) -> VMRecord:
        """Create a VM the way New-VM does (default NIC, IDE DVD on Gen1, optional new or existing VHD)."""
        if not name or len(name) > 100:
            raise HostError(
                "The virtual machine name must be between 1 and 100 characters long.",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=name,
            )
        memory = 1 * GiB if memory_startup is None else memory_startup
        _check_memory(name, memory)
        with self._cond:
            if switch_name is not None:
                self._network.switch_by_name(switch_name)
            vm_id = uuid.uuid4()
            base = normalize_path(path) + "\\" + name if path else VM_ROOT
            config = VMConfig(memory_startup=memory, secure_boot=generation == 2)
            controller = "SCSI" if generation == 2 else "IDE"
            disk_path = None
            if new_vhd_path is not None:
                if new_vhd_size is None:
                    raise HostError(
                        "Cannot process command because of one or more missing mandatory parameters: NewVHDSizeBytes.",
                        error_id="MissingMandatoryParameter",
                        category="InvalidArgument",
                        exception_type="System.Management.Automation.ParameterBindingException",
                    )
                fmt = "VHD" if new_vhd_path.lower().endswith(".vhd") else "VHDX"
                if generation == 2 and fmt == "VHD":
                    raise HostError(
                        "Generation 2 virtual machines do not support the VHD format. Use VHDX instead.",
                        error_id="InvalidParameter",
                        category="InvalidArgument",
                        target_name=new_vhd_path,
                    )
                disk_path = self._disks.create_vhd(new_vhd_path, new_vhd_size, "Dynamic", None).path
            elif vhd_path is not None:
                if self._state.files.get(normalize_path(vhd_path, self._state.virtual_hard_disk_path)) is None:
                    raise file_not_found(normalize_path(vhd_path, self._state.virtual_hard_disk_path))
                disk_path = normalize_path(vhd_path, self._state.virtual_hard_disk_path)
            if disk_path is not None:
                config.hard_drives.append(HardDiskRecord(controller, 0, 0, disk_path))
            if generation == 1:
                config.dvd_drives.append(DvdDriveRecord("IDE", 1, 0, None))
            elif boot_device == "CD":
                config.dvd_drives.append(DvdDriveRecord("SCSI", 0, 1, None))
            config.network_adapters.append(NetworkAdapterRecord(uuid.uuid4(), "Network Adapter", switch_name, None))
            vm = VMRecord(
                id=vm_id,
                name=name,
                generation=generation,
                version=version,
                path=base,
                created=datetime.datetime.now(datetime.UTC),
                config=config,
            )
            self._state.vms[vm_id] = vm
            self._cond.notify_all()
            return copy.deepcopy(vm)

    def set_vm(self, vm_id: uuid.UUID, **changes: object) -> VMRecord:
        """Apply Set-VM changes (keys: processor_count, memory_startup, dynamic_memory, memory_minimum,
        memory_maximum, notes, checkpoint_type, automatic_stop_action, automatic_start_action, name)."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            off = vm.state == "Off"
            cfg = vm.config
            if "processor_count" in changes:
                count = int(changes["processor_count"])  # type: ignore[call-overload]
                if count != cfg.processor_count and not off:
                    raise modify_failed(vm, "Processor", not_running_detail())
                if count < 1 or count > self._state.logical_processor_count:
                    raise modify_failed(
                        vm,
                        "Processor",
                        f"The count of virtual processors ({count}) is not valid: this host has "
                        f"{self._state.logical_processor_count} logical processors.",
                    )
                cfg.processor_count = count
            for key, device in [
                ("memory_startup", "Memory"),
                ("memory_minimum", "Memory"),
                ("memory_maximum", "Memory"),
                ("dynamic_memory", "Memory"),
                ("automatic_stop_action", "Settings"),
            ]:
                if key in changes:
                    value = changes[key]
                    if value != getattr(cfg, key) and not off:
                        raise modify_failed(vm, device, not_running_detail())
                    if key.startswith("memory_"):
                        _check_memory(vm.name, int(value))  # type: ignore[call-overload]
                    setattr(cfg, key, value)
            old_notes = cfg.notes
            for key in ("notes", "checkpoint_type", "automatic_start_action"):
                if key in changes:
                    setattr(cfg, key, changes[key])
            follow_guest_label(vm, old_notes)
            if "name" in changes:
                vm.name = str(changes["name"])
            self._cond.notify_all()
            return copy.deepcopy(vm)

    def remove_vm(self, vm_id: uuid.UUID) -> None:
        """Delete a VM and its checkpoints; its VHD files stay on disk, as Remove-VM leaves them."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            if vm.state in TRANSITIONAL:
                raise invalid_state(vm)
            # Remove-VM turns a running or saved VM off before deleting it.
            del self._state.vms[vm_id]
            if vm.snapshots:
                self._disks.start_merge(vm)
            self._cond.notify_all()

    def set_firmware(
        self, vm_id: uuid.UUID, *, secure_boot: bool | None = None, template: str | None = None
    ) -> VMRecord:
        """Change secure boot settings of a Generation 2 VM that is Off."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            require_generation_2(vm)
            if vm.state != "Off":
                raise modify_failed(vm, "Firmware", not_running_detail())
            if template is not None:
                if template not in SECURE_BOOT_TEMPLATES:
                    raise HostError(
                        f"The secure boot template '{template}' is not valid. Valid templates: "
                        + ", ".join(SECURE_BOOT_TEMPLATES),
                        error_id="InvalidParameter",
                        category="InvalidArgument",
                        target_name=template,
                    )
                vm.config.secure_boot_template = template
            if secure_boot is not None:
                vm.config.secure_boot = secure_boot
            return copy.deepcopy(vm)


def require_generation_2(vm: VMRecord) -> None:
    """Raise the error the VMFirmware cmdlets give for a Generation 1 VM."""
    if vm.generation != 2:
        raise HostError(
            "Generation 1 virtual machines do not support the VMFirmware cmdlets. "
            "Use Get-VMBios and Set-VMBios instead.",
            error_id="InvalidParameter",
            category="InvalidArgument",
            target_name=vm.name,
        )


def _check_memory(name: str, memory: int) -> None:
    if memory < 32 * MiB or memory % (2 * MiB):
        raise HostError(
            f"Failed to modify device 'Memory'.\nInvalid startup memory amount assigned for '{name}'. "
            "The amount must be at least 32 MB and a multiple of 2 MB.",
            error_id="InvalidParameter",
            category="InvalidArgument",
            target_name=name,
        )
