"""Files and virtual disks beyond creating them: Resize-VHD, Copy-Item, writing bytes (Set-/Add-Content
-Encoding Byte), and a guest writing to its disk (a test knob).

Each function takes the in-memory :class:`~polyvisor_hyperv_loopback.hyperv.HyperVHost` and holds its lock.
"""

from __future__ import annotations

import copy
import uuid

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .filesystem import FileEntry, normalize_path
from .host import HyperVHost
from .records import VMRecord
from .vhdx import read_facts

__all__ = ["copy_file", "guest_write", "resize_vhd", "write_bytes"]


def _not_found(path: str) -> HostError:
    return HostError(
        f"Cannot find path '{path}' because it does not exist.",
        error_id="PathNotFound",
        category="ObjectNotFound",
        target_name=path,
        exception_type="System.Management.Automation.ItemNotFoundException",
    )


def _drive_of(host: HyperVHost, path: str) -> tuple[VMRecord, str] | None:
    """The VM whose drive's chain holds ``path``, with the drive's controller type."""
    key = path.casefold()
    for vm in host.list_vms():
        for drive in vm.config.hard_drives:
            if drive.path and any(e.path.casefold() == key for e in _chain(host, drive.path)):
                return vm, drive.controller_type
    return None


def _chain(host: HyperVHost, path: str) -> list[FileEntry]:
    out: list[FileEntry] = []
    entry = host.files.get(path)
    while entry is not None and all(e.path.casefold() != entry.path.casefold() for e in out):
        out.append(entry)
        entry = host.files.get(entry.parent_path) if entry.parent_path else None
    return out


def resize_vhd(host: HyperVHost, path: str, size: int) -> FileEntry:
    """Resize-VHD -SizeBytes, as Windows does it.

    Growing works for fixed and dynamic VHD and VHDX and for differencing VHDX, not for a differencing VHD;
    shrinking works for VHDX only and never below the disk's MinimumSize (MicrosoftDocs ResizeVirtualHardDisk of
    Msvm_ImageManagementService, Remarks; Resize-VHD.md). This host models no partitions, so a disk's MinimumSize
    is its size: every shrink fails. A disk on a running VM's IDE chain cannot be resized; on its SCSI chain it
    can (Resize-VHD.md).
    """
    full = normalize_path(path, host.virtual_hard_disk_path)
    with host.condition:
        entry = host.files.get(full)
        if entry is None or entry.vhd_type is None:
            raise _not_found(full)
        size = int(size)
        if size < entry.size:
            reason = (
                "a VHD cannot be shrunk"
                if entry.vhd_format == "VHD"
                else f"the size is below the disk's minimum size ({entry.size} bytes)"
            )
            raise HostError(
                f"Failed to resize the virtual disk.\nThe system failed to resize '{full}': {reason}. (0x80070057)",
                error_id="InvalidParameter",
                category="InvalidArgument",
                target_name=full,
            )
        if entry.vhd_type == "Differencing" and entry.vhd_format == "VHD" and size != entry.size:
            raise HostError(
                f"Failed to resize the virtual disk.\nThe system failed to resize '{full}': a differencing VHD "
                "cannot be resized; only VHDX differencing disks can. (0x80070032)",
                error_id="NotSupported",
                category="NotImplemented",
                target_name=full,
            )
        user = _drive_of(host, full)
        if user is not None:
            vm, controller = user
            if vm.state != "Off" and controller == "IDE":
                raise HostError(
                    f"Failed to resize the virtual disk.\nThe system failed to resize '{full}': it is attached to "
                    f"the IDE chain of '{vm.name}', which is running; stop the virtual machine first. (0x80070020)",
                    error_id="InvalidState",
                    category="InvalidOperation",
                    target_name=full,
                )
        entry.size = size
        entry.from_bytes = False  # its metadata is rewritten: from now on the host models the disk
        if entry.vhd_type == "Fixed":
            entry.file_size = size
        host.condition.notify_all()
        return copy.deepcopy(entry)


def copy_file(host: HyperVHost, source: str, destination: str) -> FileEntry:
    """Copy-Item -LiteralPath source -Destination destination: the same bytes under a new name (a VHD keeps its
    identity, as a byte copy does). An existing destination is overwritten, as Copy-Item does."""
    src = normalize_path(source)
    dst = normalize_path(destination)
    with host.condition:
        entry = host.files.get(src)
        if entry is None:
            raise _not_found(src)
        clone = copy.deepcopy(entry)
        clone.path = dst
        clone.checkpoint_of = None
        if host.files.get(dst) is not None:
            host.files.remove(dst)
        host.files.create(clone)
        host.condition.notify_all()
        return copy.deepcopy(clone)


def write_bytes(host: HyperVHost, path: str, data: bytes, *, append: bool) -> FileEntry:
    """Set-Content (``append=False``: create or truncate) or Add-Content (``append=True``: create or append) with
    ``-Encoding Byte``: the bytes land in the file as they are."""
    full = normalize_path(path)
    with host.condition:
        entry = host.files.get(full)
        if entry is not None and host.disks.in_use(full):
            raise HostError(
                f"The process cannot access the file '{full}' because it is being used by another process.",
                error_id="GetContentWriterIOError",
                category="WriteError",
                target_name=full,
                exception_type="System.IO.IOException",
            )
        if entry is None:
            entry = host.files.create(FileEntry(path=full, size=0, file_size=0))
        elif entry.vhd_type is not None and not entry.from_bytes:
            raise HostError(
                f"Cannot write bytes into the virtual hard disk '{full}' with this host.",
                error_id="NotSupported",
                category="NotImplemented",
                target_name=full,
            )
        if not append:
            entry.data = bytearray()
        entry.data += data
        _read_what_the_bytes_are(entry)
        host.condition.notify_all()
        return copy.deepcopy(entry)


def _read_what_the_bytes_are(entry: FileEntry) -> None:
    """A file whose bytes are a VHDX is one, with the facts its metadata gives; any other file is a plain one."""
    entry.file_size = len(entry.data)
    facts = read_facts(entry.data)
    if facts is None:
        entry.vhd_type = entry.vhd_format = entry.parent_path = None
        entry.from_bytes = False
        entry.size = entry.file_size
        return
    entry.from_bytes = True
    entry.vhd_type, entry.vhd_format, entry.size = facts.vhd_type, "VHDX", facts.size
    entry.block_size, entry.parent_path = facts.block_size, None
    entry.logical_sector_size, entry.physical_sector_size = facts.logical_sector_size, facts.physical_sector_size
    entry.disk_identifier = facts.disk_identifier


def guest_write(host: HyperVHost, vm_id: uuid.UUID, data: bytes) -> str:
    """The guest of a running VM writes ``data`` to its first disk: the bytes land in the file its drive points
    at (a differencing disk's parent never changes). Return that file's path. A test knob: no cmdlet reaches it."""
    with host.condition:
        vm = host.vm_record(vm_id)
        if vm.state != "Running":
            raise ValueError(f"the guest of {vm.name!r} is not running, so it writes nothing")
        drives = [d for d in vm.config.hard_drives if d.path]
        if not drives or drives[0].path is None:
            raise ValueError(f"{vm.name!r} has no disk to write to")
        entry = host.files.get(drives[0].path)
        if entry is None:
            raise ValueError(f"the disk of {vm.name!r} is missing: {drives[0].path}")
        entry.data += data
        return entry.path
