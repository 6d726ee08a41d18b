"""Drives on the VMs' IDE and SCSI controllers: Add-VMHardDiskDrive, Add-VMDvdDrive, Set-VMDvdDrive, Remove-*.

IDE drives change only while the VM is off; SCSI drives are hot added and removed. A drive takes the first free
slot unless a controller number and location are given.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .faults import file_not_found, modify_failed, not_running_detail
from .filesystem import normalize_path
from .records import DvdDriveRecord, HardDiskRecord, VMRecord, all_drives
from .state import HostState

__all__ = ["Drives"]


class Drives:
    """The hard disk and DVD drives on each VM's controllers."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition

    def add_hard_disk(
        self,
        vm_id: uuid.UUID,
        path: str | None,
        controller_type: str | None = None,
        controller_number: int | None = None,
        controller_location: int | None = None,
        disk_number: int | None = None,
    ) -> HardDiskRecord:
        """Attach a disk at the first free slot (or the one given); ``disk_number`` passes a physical disk through."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            full = None
            if disk_number is not None and disk_number not in self._state.physical_disks:
                raise HostError(
                    f"Failed to add device 'Physical Disk'.\nNo physical disk with number {disk_number} is "
                    "available for pass-through.",
                    error_id="ObjectNotFound",
                    category="ObjectNotFound",
                    target_name=vm.name,
                )
            if path is not None and disk_number is None:
                full = normalize_path(path, self._state.virtual_hard_disk_path)
                if self._state.files.get(full) is None:
                    raise file_not_found(full)
            ctype = controller_type or ("SCSI" if vm.generation == 2 else "IDE")
            if ctype == "IDE" and vm.generation == 2:
                raise HostError(
                    "Generation 2 virtual machines do not support IDE controllers.",
                    error_id="InvalidParameter",
                    category="InvalidArgument",
                    target_name=vm.name,
                )
            if ctype == "IDE" and vm.state != "Off":
                raise modify_failed(vm, "Hard Drive", not_running_detail())
            number, location = self._free_slot(vm, ctype, controller_number, controller_location)
            drive = HardDiskRecord(ctype, number, location, full, disk_number)
            vm.config.hard_drives.append(drive)
            self._cond.notify_all()
            return copy.deepcopy(drive)

    def add_dvd_drive(self, vm_id: uuid.UUID, path: str | None) -> DvdDriveRecord:
        """Attach a DVD drive at the first free slot."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            full = None if path is None else normalize_path(path)
            if full is not None and self._state.files.get(full) is None:
                raise file_not_found(full)
            ctype = "SCSI" if vm.generation == 2 else "IDE"
            if ctype == "IDE" and vm.state != "Off":
                raise modify_failed(vm, "DVD Drive", not_running_detail())
            number, location = self._free_slot(vm, ctype, None, None)
            drive = DvdDriveRecord(ctype, number, location, full)
            vm.config.dvd_drives.append(drive)
            return copy.deepcopy(drive)

    def set_dvd_media(self, vm_id: uuid.UUID, slot: tuple[str, int, int], path: str | None) -> DvdDriveRecord:
        """Insert (or with None eject) an ISO in the DVD drive at ``slot``."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            full = None if path is None else normalize_path(path)
            if full is not None and self._state.files.get(full) is None:
                raise file_not_found(full)
            for drive in vm.config.dvd_drives:
                if (drive.controller_type, drive.controller_number, drive.controller_location) == slot:
                    drive.path = full
                    return copy.deepcopy(drive)
            raise HostError(
                f"No DVD drive was found at the given location on '{vm.name}'.",
                error_id="ObjectNotFound",
                category="ObjectNotFound",
                target_name=vm.name,
            )

    def _free_slot(self, vm: VMRecord, ctype: str, number: int | None, location: int | None) -> tuple[int, int]:
        used = {(d.controller_number, d.controller_location) for d in all_drives(vm) if d.controller_type == ctype}
        numbers = [number] if number is not None else list(range(2 if ctype == "IDE" else 4))
        locations_per = 2 if ctype == "IDE" else 64
        for n in numbers:
            for loc in [location] if location is not None else range(locations_per):
                if (n, loc) not in used:
                    return n, loc
        raise HostError(
            f"Failed to add device 'Virtual Hard Disk'.\nThe controller slot is already in use on '{vm.name}'.",
            error_id="InvalidParameter",
            category="InvalidArgument",
            target_name=vm.name,
        )

    def remove_drive(self, vm_id: uuid.UUID, slot: tuple[str, int, int], dvd: bool) -> None:
        """Detach the hard disk (or DVD) drive at ``slot``; the file stays."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            drives: list[Any] = vm.config.hard_drives  # hard disk or DVD records: same slot fields
            if dvd:
                drives = vm.config.dvd_drives
            for index, drive in enumerate(drives):
                if (drive.controller_type, drive.controller_number, drive.controller_location) == slot:
                    if drive.controller_type == "IDE" and vm.state != "Off":
                        raise modify_failed(vm, "Hard Drive", not_running_detail())
                    del drives[index]
                    self._cond.notify_all()
                    return
            raise HostError(
                f"No drive was found at the given location on '{vm.name}'.",
                error_id="ObjectNotFound",
                category="ObjectNotFound",
                target_name=vm.name,
            )
