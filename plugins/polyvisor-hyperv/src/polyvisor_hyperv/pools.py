"""The host's storage as polyvisor values: its disk and VM paths and the image folders under the former, the files
in them, folders and virtual hard disks made and deleted, and which VMs use a file.

Hyper-V has no storage pools. Its pools here are the host's ``VirtualHardDiskPath`` (the default pool) and
``VirtualMachinePath`` (``Get-VMHost``), named so, and the folders directly under the disk path, named by their
folder names (``New-Item -ItemType Directory``). A pool's sizes are its drive's (``Get-PSDrive``: used and free),
as libvirt reports a directory pool's file system. A pool's volumes are its files (``Get-ChildItem -File``), a
virtual hard disk's virtual size read with one ``Get-VHD`` for all of them. Every path is a parameter value, never
script text, so a name such as ``$(Stop-Computer).img`` is a name.
"""

from __future__ import annotations

import contextlib
import ntpath
from collections.abc import Sequence

from polyvisor.backend import Deadline
from polyvisor.errors import InUseError, NotFoundError, PolyvisorError, ValidationError
from polyvisor.storage import StoragePool, Volume, VolumeFormat, is_partial
from polyvisor_hyperv.client import HyperVClient, as_text, then
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.transport import Row

__all__ = ["CLEANUP_SECONDS", "HOST_POOLS", "VHD_POOL", "VM_POOL", "Pools", "format_of"]

CLEANUP_SECONDS = 0.3
"""How long removing an unfinished transfer's temporary file may take, past a deadline that cut the transfer off."""

VHD_POOL = "VirtualHardDiskPath"
VM_POOL = "VirtualMachinePath"
HOST_POOLS = (VHD_POOL, VM_POOL)
"""The pools that are the host's own paths: never made or deleted here."""

_BY_EXTENSION = {
    ".vhdx": VolumeFormat.VHDX,
    ".vhd": VolumeFormat.VHD,
    ".iso": VolumeFormat.ISO,
    ".qcow2": VolumeFormat.QCOW2,
    ".img": VolumeFormat.RAW,
    ".raw": VolumeFormat.RAW,
}
_VHD = (VolumeFormat.VHDX, VolumeFormat.VHD)
_DISK_SUFFIXES = (".vhdx", ".vhd", ".avhdx", ".avhd")  # a checkpoint's disk is an .avhdx


def format_of(name: str) -> VolumeFormat:
    """A file's format by its extension, as Hyper-V itself tells a VHD from a VHDX."""
    return _BY_EXTENSION.get(ntpath.splitext(name)[1].casefold(), VolumeFormat.OTHER)


class Pools:
    """The host's disk paths, image folders and the files in them, over one client."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    @property
    def host(self) -> str:
        return self._client.host

    def _run(self, steps: Sequence[Step], doing: str, select: Sequence[str], deadline: Deadline | None) -> list[Row]:
        return self._client.run(steps, doing=doing, select=select, deadline=deadline)

    # -- finding -----------------------------------------------------------------------------------------------
    def host_paths(self, deadline: Deadline | None = None) -> dict[str, str]:
        rows = self._run([Step("Get-VMHost")], "reading the host's paths (Get-VMHost)", HOST_POOLS, deadline)
        paths = {name: as_text(rows[0].get(name)) if rows else "" for name in HOST_POOLS}
        self._client.vhd_directory = paths[VHD_POOL] or None
        return paths

    def directory(self, pool: str | None, deadline: Deadline | None = None) -> tuple[str, str]:
        """The (name, directory) of a pool; an image folder is not checked here (listing it is)."""
        name = pool or VHD_POOL
        if name == VM_POOL:
            return name, self.host_paths(deadline)[VM_POOL]
        vhd = self._client.vhd_dir()
        return name, vhd if name == VHD_POOL else ntpath.join(vhd, name)

    def _missing(self, name: str) -> NotFoundError:
        return NotFoundError(
            f"no pool named {name!r}: Hyper-V's pools are {VHD_POOL}, {VM_POOL} and the folders under "
            f"{self._client.vhd_dir()}; list them with pools()",
            host=self.host,
        )

    # -- values ------------------------------------------------------------------------------------------------
    def pools(self, deadline: Deadline | None = None) -> list[StoragePool]:
        """Get-VMHost, the disk path's folders, and each drive's used and free bytes: three or four requests."""
        paths = self.host_paths(deadline)
        folders = self._run(
            [Step("Get-ChildItem", {"LiteralPath": paths[VHD_POOL], "Directory": SWITCH})],
            "listing the image folders (Get-ChildItem)",
            ("Name", "FullName"),
            deadline,
        )
        places = [(VHD_POOL, "virtual-hard-disks", paths[VHD_POOL]), (VM_POOL, "virtual-machines", paths[VM_POOL])]
        places += [(as_text(row.get("Name")), "folder", as_text(row.get("FullName"))) for row in folders]
        drives = {ntpath.splitdrive(path)[0].rstrip(":").upper() for _n, _k, path in places if path}
        sizes: dict[str, tuple[int, int]] = {}
        for drive in sorted(d for d in drives if d):
            rows = self._run(
                [Step("Get-PSDrive", {"Name": [drive], "PSProvider": ["FileSystem"]})],
                f"reading the free space of drive {drive}: (Get-PSDrive)",
                ("Used", "Free"),
                deadline,
            )
            if rows:
                sizes[drive] = (int(rows[0].get("Used") or 0), int(rows[0].get("Free") or 0))
        out = []
        for name, kind, path in places:
            used, free = sizes.get(ntpath.splitdrive(path)[0].rstrip(":").upper(), (-1, -1))
            known = used >= 0
            out.append(
                StoragePool(
                    name=name,
                    kind=kind,
                    path=path or None,
                    capacity=used + free if known else None,
                    allocation=used if known else None,
                    available=free if known else None,
                )
            )
        return out

    def volumes(self, pool: str | None, deadline: Deadline | None = None) -> list[Volume]:
        """Get-ChildItem -File in the pool's directory, then one Get-VHD for its virtual hard disks."""
        name, directory = self.directory(pool, deadline)
        try:
            files = self._run(
                [Step("Get-ChildItem", {"LiteralPath": directory, "File": SWITCH})],
                f"listing the files of pool {name!r} (Get-ChildItem)",
                ("Name", "FullName", "Length"),
                deadline,
            )
        except NotFoundError:
            raise self._missing(name) from None
        disks = [as_text(row.get("FullName")) for row in files if format_of(as_text(row.get("Name"))) in _VHD]
        sizes: dict[str, int] = {}
        if disks:
            rows = self._run(
                [Step("Get-VHD", {"Path": disks, "ErrorAction": "SilentlyContinue"})],
                f"reading the virtual hard disks of pool {name!r} (Get-VHD)",
                ("Path", "Size"),
                deadline,
            )
            sizes = {as_text(row.get("Path")).casefold(): int(row.get("Size") or 0) for row in rows}
        volumes = []
        for row in files:
            file_name, path, length = (
                as_text(row.get("Name")),
                as_text(row.get("FullName")),
                int(row.get("Length") or 0),
            )
            fmt = format_of(file_name)
            capacity = sizes.get(path.casefold(), length)
            volumes.append(Volume(file_name, name, path, fmt, capacity, length, is_partial(file_name)))
        return sorted(volumes, key=lambda volume: volume.name)

    def volume(self, pool: str | None, name: str, deadline: Deadline | None = None) -> Volume:
        found = next((v for v in self.volumes(pool, deadline) if v.name.casefold() == name.casefold()), None)
        if found is None:
            raise NotFoundError(f"pool {pool or VHD_POOL!r} has no volume named {name!r}", host=self.host)
        return found

    # -- pools (image folders) ---------------------------------------------------------------------------------
    def create_pool(self, name: str, path: str | None, deadline: Deadline) -> StoragePool:
        """New-Item -ItemType Directory under the disk path."""
        if name.casefold() in (p.casefold() for p in HOST_POOLS):
            raise ValidationError(f"{name!r} names one of the host's own paths; choose another name", field="name")
        if path is not None:
            raise ValidationError(
                f"on Hyper-V an image folder is always made under the host's {VHD_POOL} "
                f"({self._client.vhd_dir()}); leave path out",
                field="path",
            )
        _name, directory = self.directory(name, deadline)
        self._client.run(
            [Step("New-Item", {"Path": directory, "ItemType": "Directory"})],
            doing=f"making the image folder {directory} (New-Item)",
            deadline=deadline,
        )
        return next(pool for pool in self.pools(deadline) if pool.name == name)

    def delete_pool(self, name: str, deadline: Deadline) -> None:
        """Remove-Item of an empty image folder; one holding files is InUseError naming them."""
        if name.casefold() in (p.casefold() for p in HOST_POOLS):
            raise ValidationError(f"{name!r} is one of the host's own paths, not an image folder", field="name")
        held = self.volumes(name, deadline)
        if held:
            shown = ", ".join(repr(volume.name) for volume in held[:5])
            raise InUseError(
                f"pool {name!r} still holds {len(held)} file(s) ({shown}); delete them first", users=(), host=self.host
            )
        _name, directory = self.directory(name, deadline)
        self._client.run(
            [Step("Remove-Item", {"LiteralPath": directory})],
            doing=f"removing the image folder {directory} (Remove-Item)",
            deadline=deadline,
        )

    # -- volumes -----------------------------------------------------------------------------------------------
    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat, deadline: Deadline) -> Volume:
        """New-VHD -Dynamic; the name's extension must say the format (Hyper-V reads it from there)."""
        if fmt not in _VHD:
            raise ValidationError(
                f"Hyper-V makes virtual hard disks only: give format 'vhdx' or 'vhd', not {fmt.value!r}",
                field="format",
            )
        if format_of(name) is not fmt:
            raise ValidationError(f"a {fmt.value} volume's name ends in .{fmt.value}: {name!r} does not", field="name")
        _pool, directory = self.directory(pool, deadline)
        path = ntpath.join(directory, name)
        self._client.run(
            [Step("New-VHD", {"Path": path, "SizeBytes": size, "Dynamic": SWITCH})],
            doing=f"creating the virtual hard disk {path} (New-VHD)",
            deadline=deadline,
        )
        return self.volume(pool, name, deadline)

    def resize_volume(self, pool: str | None, name: str, size: int, deadline: Deadline) -> Volume:
        """Resize-VHD -SizeBytes (a virtual hard disk only)."""
        found = self.volume(pool, name, deadline)
        if found.format not in _VHD:
            raise ValidationError(f"{name!r} is no virtual hard disk; Hyper-V resizes VHD and VHDX only", field="name")
        self._client.run(
            [Step("Resize-VHD", {"Path": [found.path], "SizeBytes": size})],
            doing=f"resizing {found.path} (Resize-VHD)",
            deadline=deadline,
        )
        return self.volume(pool, name, deadline)

    def delete_volume(self, pool: str | None, name: str, deadline: Deadline) -> None:
        """Remove-Item, unless a VM's drive uses the file or a disk in its chain has it as parent."""
        found = self.volume(pool, name, deadline)
        users = self.users(found.path, deadline)
        if users:
            listed = ", ".join(repr(user) for user in users)
            raise InUseError(
                f"volume {name!r} ({found.path}) is used by {'VM' if len(users) == 1 else 'VMs'} {listed}; delete "
                "or detach their disks first",
                users=users,
                host=self.host,
            )
        self._client.run(
            [Step("Remove-Item", {"LiteralPath": found.path})],
            doing=f"removing {found.path} (Remove-Item)",
            deadline=deadline,
        )

    def users(self, path: str, deadline: Deadline | None = None) -> list[str]:
        """The VMs with a drive on ``path`` (a disk, a DVD) or on a disk whose parent chain holds it."""
        drives: list[tuple[str, str]] = []
        for kind in ("Get-VMHardDiskDrive", "Get-VMDvdDrive"):
            rows = self._run(
                [Step("Get-VM"), then(kind)], "finding the VMs that use a file", ("VMName", "Path"), deadline
            )
            drives += [(as_text(r.get("VMName")), as_text(r.get("Path"))) for r in rows if r.get("Path")]
        key = path.casefold()
        users = {vm for vm, drive in drives if drive.casefold() == key}
        # Follow the parents of the disks, one Get-VHD per level, to see which chains reach ``path``.
        frontier: dict[str, set[str]] = {}
        for vm, drive in drives:
            if drive.casefold().endswith(_DISK_SUFFIXES):
                frontier.setdefault(drive.casefold(), set()).add(vm)
        seen: set[str] = set(frontier)
        while frontier:
            rows = self._run(
                [Step("Get-VHD", {"Path": list(frontier), "ErrorAction": "SilentlyContinue"})],
                "following the VMs' disk chains (Get-VHD)",
                ("Path", "ParentPath"),
                deadline,
            )
            following: dict[str, set[str]] = {}
            for row in rows:
                parent = as_text(row.get("ParentPath")).casefold()
                vms = frontier.get(as_text(row.get("Path")).casefold(), set())
                if not parent:
                    continue
                if parent == key:
                    users |= vms
                if parent not in seen:
                    following.setdefault(parent, set()).update(vms)
            seen |= set(following)
            frontier = following
        return sorted(users)

    def remove_quietly(self, path: str) -> None:
        """Remove a file, reporting nothing (an unfinished upload's temporary file), within :data:`CLEANUP_SECONDS`.

        It has a bound of its own: it runs when the caller's deadline may have passed already, and a network that
        stalled the transfer must not hold the caller past the contract's second.
        """
        # The upload's own error is what the caller sees; a listing shows what is left, marked partial.
        with contextlib.suppress(PolyvisorError):
            self._client.run(
                [Step("Remove-Item", {"LiteralPath": path, "Force": SWITCH, "ErrorAction": "SilentlyContinue"})],
                doing="removing an unfinished upload",
                deadline=Deadline(CLEANUP_SECONDS),
            )
