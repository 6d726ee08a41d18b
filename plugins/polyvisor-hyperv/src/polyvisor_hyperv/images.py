"""Disks made from base images (linked clones, copies) and the cloud-init seed uploaded as an ISO, for a new VM.

* ``clone="linked"`` is a differencing disk, ``New-VHD -Path <new> -ParentPath <base> -Differencing``; ``"copy"`` is
  ``Copy-Item -LiteralPath <base> -Destination <new>``, as Vagrant's Hyper-V provider clones a box's disk
  (hashicorp/vagrant plugins/providers/hyperv/scripts/utils/VagrantVM/VagrantVM.psm1, ``New-VagrantVMXML``:
  ``New-VHD -ParentPath`` when linked, else ``Copy-Item``). ``size_mib`` then grows the new disk with
  ``Resize-VHD -SizeBytes``. Every base is read with ``Get-VHD`` before anything is created, so a missing base or a
  size below the base's raises before the VM exists.
* The seed ISO is built here and written to ``<VirtualHardDiskPath>\\<VMId>-cidata.iso`` in chunks of at most
  :data:`SEED_CHUNK` bytes: each chunk is a byte[] *parameter* of ``Set-Content``/``Add-Content -Encoding Byte``
  (PSRP sends it as a typed byte array, the WinRM shell as base64 data its fixed runner decodes), so no byte of
  the file is ever PowerShell source. ``Get-FileHash`` then proves the file is byte-for-byte what was sent. The
  file is named after the VM's Id, which is how :meth:`seed_files` finds it again to delete it with the VM.
"""

from __future__ import annotations

import hashlib
import ntpath
from collections.abc import Mapping, Sequence
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, NotFoundError, ValidationError
from polyvisor.model import CloneMode, CloudInit, DiskSpec, VMSpec
from polyvisor.provisioning import build_seed_iso
from polyvisor_hyperv.client import HyperVClient, MiB, as_text, then, vm_step
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.transport import Row

__all__ = ["SEED_CHUNK", "Images", "seed_name"]

SEED_CHUNK = 64 * 1024
"""Bytes of the seed per request: 87 KB as base64, about 117 KB once PSRP wraps it again, so one chunk fits one
message of Windows' default MaxEnvelopeSize (150 KiB) on either transport."""


def seed_name(uuid: str) -> str:
    """The seed ISO's file name: the VM's Id makes it the VM's own."""
    return f"{uuid}-cidata.iso"


class Images:
    """Clones of base images and cloud-init seeds on the host."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    def inspect(self, spec: VMSpec) -> dict[str, Row]:
        """``Get-VHD`` every base image the spec clones; check each exists and each ``size_mib`` is not below its
        base's size. Return the rows (Path, Size, VhdFormat) by base path, as given."""
        clones = [disk for disk in spec.disks if disk.clone is not None]
        if not clones:
            return {}
        paths = list(dict.fromkeys(str(disk.image) for disk in clones))
        rows = self._client.run(
            [Step("Get-VHD", {"Path": paths, "ErrorAction": "SilentlyContinue"})],
            doing="reading the base images (Get-VHD)",
            vm=spec.name,
            select=("Path", "Size", "VhdFormat"),
        )
        found = {as_text(row.get("Path")).casefold(): row for row in rows}
        bases: dict[str, Row] = {}
        for path in paths:
            row = found.get(path.casefold())
            if row is None:
                raise NotFoundError(
                    f"the base image {path} does not exist on the host (or is no virtual hard disk); nothing was "
                    "created",
                    host=self._client.host,
                    vm=spec.name,
                )
            bases[path] = row
        for disk in clones:
            size = int(bases[str(disk.image)].get("Size") or 0)
            if disk.size_mib is not None and disk.size_mib * MiB < size:
                raise ValidationError(
                    f"disk.size_mib {disk.size_mib} MiB is below the size of its base image {disk.image} "
                    f"({size // MiB} MiB); a clone can only grow: give at least {-(-size // MiB)} MiB or leave "
                    "size_mib out",
                    field="disk.size_mib",
                )
            fmt = as_text(bases[str(disk.image)].get("VhdFormat")).upper()
            if spec.generation == 2 and fmt == "VHD":
                raise ValidationError(
                    f"the base image {disk.image} is a VHD, which generation 2 (UEFI) VMs cannot use; convert it to "
                    "VHDX (Convert-VHD) or use firmware='bios'",
                    field="disk.image",
                )
            grows = disk.size_mib is not None and disk.size_mib * MiB > size
            if disk.clone is CloneMode.LINKED and fmt == "VHD" and grows:
                raise ValidationError(
                    f"a linked clone of the VHD {disk.image} cannot be grown (Hyper-V resizes differencing VHDX "
                    "disks only); leave size_mib out or clone='copy'",
                    field="disk.size_mib",
                )
        return bases

    def clone_steps(self, disk: DiskSpec, base: Row, path: str) -> list[Step]:
        """The steps that make ``path`` from the disk's base image (and grow it to ``size_mib``)."""
        image = str(disk.image)
        if disk.clone is CloneMode.LINKED:
            steps = [Step("New-VHD", {"Path": path, "ParentPath": image, "Differencing": SWITCH})]
        else:
            steps = [Step("Copy-Item", {"LiteralPath": image, "Destination": path})]
        size = int(base.get("Size") or 0)
        if disk.size_mib is not None and disk.size_mib * MiB > size:
            steps.append(Step("Resize-VHD", {"Path": path, "SizeBytes": disk.size_mib * MiB}))
        return steps

    @staticmethod
    def clone_extension(base: Row) -> str:
        """A clone keeps its base's format."""
        return "vhd" if as_text(base.get("VhdFormat")).upper() == "VHD" else "vhdx"

    def seed(self, uuid: str, cloud_init: CloudInit, deadline: Deadline) -> str:
        """Write the NoCloud seed ISO to the host and verify it; return its path."""
        data = build_seed_iso(cloud_init)
        path = f"{self._client.vhd_dir().rstrip(chr(92))}\\{seed_name(uuid)}"
        for offset in range(0, len(data), SEED_CHUNK):
            command = "Set-Content" if offset == 0 else "Add-Content"
            end = min(offset + SEED_CHUNK, len(data))
            parameters: dict[str, Any] = {
                "LiteralPath": path,
                "Value": data[offset : offset + SEED_CHUNK],
                "Encoding": "Byte",
            }
            self._client.run(
                [Step(command, parameters)],
                doing=f"uploading the cloud-init seed (bytes {offset} to {end} of {len(data)})",
                vm=uuid,
                deadline=deadline,
            )
        rows = self._client.run(
            [Step("Get-FileHash", {"LiteralPath": path, "Algorithm": "SHA256"})],
            doing="verifying the cloud-init seed (Get-FileHash)",
            vm=uuid,
            select=("Hash",),
            deadline=deadline,
        )
        expected = hashlib.sha256(data).hexdigest().upper()
        got = as_text(rows[0].get("Hash")).upper() if rows else ""
        if got != expected:
            raise BackendError(
                f"the cloud-init seed {path} arrived damaged: SHA256 {got or 'unknown'} on the host, {expected} sent",
                host=self._client.host,
                vm=uuid,
            )
        return path

    @staticmethod
    def seed_steps(uuid: str, path: str, spec: VMSpec) -> list[Step]:
        """Insert the seed: a Generation 1 VM's own empty DVD drive (IDE 1:0) when the spec has no CD-ROM, else a
        new DVD drive (IDE on Generation 1, SCSI on Generation 2)."""
        vm = vm_step(uuid)
        if spec.generation == 1 and spec.cdrom is None:
            return [vm, then("Get-VMDvdDrive"), then("Set-VMDvdDrive", Path=path)]
        return [vm, then("Add-VMDvdDrive", Path=path)]

    def seed_files(self, uuid: str, deadline: Deadline | None = None) -> list[str]:
        """The VM's seed ISOs in its DVD drives (files named after its Id)."""
        rows = self._client.run(
            [vm_step(uuid), then("Get-VMDvdDrive")],
            doing="listing the VM's DVD drives",
            vm=uuid,
            select=("Path",),
            deadline=deadline,
        )
        name = seed_name(uuid).casefold()
        return [path for path in _paths(rows) if ntpath.basename(path).casefold() == name]


def _paths(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [as_text(row.get("Path")) for row in rows if row.get("Path")]
