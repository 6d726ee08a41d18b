"""Disks made from base images (linked clones, full copies) and cloud-init seeds, as volumes of a storage pool.

* A **linked clone** is a new qcow2 volume whose ``<backingStore>`` is the base: libvirt has ``qemu-img create -b``
  write only the overlay's header, and QEMU opens the backing file read-only, so the base is never written.
* A **copy** is ``createXMLFrom`` when the base is a pool volume (libvirt copies on the host), else the base's bytes
  uploaded into a new volume through a storage stream.
* A **seed** is the NoCloud ``cidata`` ISO built in memory and uploaded into a new raw volume.

Each volume made goes into the caller's ``created`` list at once, so a create that fails later deletes it; the
backend records them as owned, so ``delete(storage=True)`` removes them. The base is never recorded.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.model import CloneMode, DiskFormat, DiskSpec, Feature
from polyvisor.provisioning import CloudInit, build_seed_iso
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["BaseImage", "Images", "probe_header"]

MIB = 1024 * 1024
_CHUNK = 4 * MIB
_QEMU_FORMATS = {DiskFormat.QCOW2: "qcow2", DiskFormat.RAW: "raw", DiskFormat.VHDX: "vhdx", DiskFormat.VHD: "vpc"}
_EXTENSIONS = {"qcow2": "qcow2", "raw": "img", "vhdx": "vhdx", "vpc": "vhd"}


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A base image as polyvisor found it: its format (QEMU's name) and virtual size in bytes."""

    path: str
    format: str
    virtual_size: int
    volume: libvirt.virStorageVol | None = None
    """The pool volume at ``path``, when a pool knows it (then libvirt can copy it on the host)."""


def probe_header(head: bytes, tail: bytes, file_size: int, declared: str | None) -> tuple[str, int]:
    """Return (format, virtual size) of an image file from its first and last 512 bytes, or raise ValueError why
    it is not a disk image. Formats: qcow2 and VHD (``vpc``) by their headers, else raw (a non-empty whole number of
    512-byte sectors); VHDX is recognised but its size is not read here."""
    if head[:4] == b"QFI\xfb":
        found, size = "qcow2", struct.unpack_from(">Q", head, 24)[0] if len(head) >= 32 else 0
    elif head[:8] == b"vhdxfile":
        raise ValueError("is a VHDX image; libvirt can use it as a base only as a volume of a storage pool")
    elif head[:8] == b"conectix" or tail[:8] == b"conectix":
        footer = head if head[:8] == b"conectix" else tail
        found, size = "vpc", struct.unpack_from(">Q", footer, 48)[0] if len(footer) >= 56 else 0
    else:
        if declared not in (None, "raw"):
            raise ValueError(f"has no {declared} header")
        if file_size == 0 or file_size % 512:
            raise ValueError(
                f"is not a disk image: no qcow2 or VHD header, and its {file_size} bytes are not a whole number of "
                "512-byte sectors (as a raw image's are)"
            )
        return "raw", file_size
    if declared is not None and declared != found:
        raise ValueError(f"is a {found} image, not {declared} as the disk's format says")
    if size <= 0:
        raise ValueError(f"has a {found} header with no virtual size")
    return found, size


class Images:
    """Clones of base images and cloud-init seeds in storage pools, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    # -- bases ---------------------------------------------------------------------------------------------------
    def inspect(self, path: str, declared: DiskFormat | None, vm: str) -> BaseImage:
        """Find the base: a pool volume (libvirt knows its format and size) or a local file read here.

        A missing file raises NotFoundError; one that cannot be read or is no disk image, ValidationError; both
        name the path.
        """
        wanted = _QEMU_FORMATS[declared] if declared else None
        conn = self._client.live()
        volume: libvirt.virStorageVol | None = None
        with contextlib.suppress(libvirt.libvirtError):
            volume = conn.storageVolLookupByPath(path)
        if volume is not None:
            with self._client.errors(f"reading the base image volume {path!r}", host=self._client.host, vm=vm):
                _kind, capacity, _allocation = volume.info()
                xml = volume.XMLDesc(0)
            fmt = ET.fromstring(xml).find("target/format")
            found = fmt.get("type", "raw") if fmt is not None else "raw"
            found = "raw" if found == "iso" else found
            if wanted is not None and wanted != found:
                raise ValidationError(
                    f"VM {vm!r}: the base image {path!r} is a {found} volume, not {wanted} as the disk's format says",
                    field="disk.image",
                )
            return BaseImage(path, found, int(capacity), volume)
        if not self._client.uri.is_local:
            raise ValidationError(
                f"VM {vm!r}: the base image {path!r} is not a volume of a storage pool on {self._client.host}; "
                "on a remote host polyvisor can only clone pool volumes (refresh the pool, or put the image in one)",
                field="disk.image",
            )
        file = Path(path)
        if not file.exists():
            raise NotFoundError(
                f"the base image {path!r} does not exist on this host; check the path and retry",
                host=self._client.host,
                vm=vm,
            )
        try:
            size = file.stat().st_size
            with file.open("rb") as handle:
                head = handle.read(512)
                handle.seek(max(size - 512, 0))
                tail = handle.read(512)
            found, virtual = probe_header(head, tail, size, wanted)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ValidationError(
                f"VM {vm!r}: the base image {path!r} cannot be used: {reason}", field="disk.image"
            ) from error
        return BaseImage(path, found, virtual)

    # -- clones --------------------------------------------------------------------------------------------------
    def clone(
        self,
        disk: DiskSpec,
        pool: libvirt.virStoragePool,
        stem: str,
        vm: str,
        created: list[libvirt.virStorageVol],
        deadline: Deadline,
    ) -> tuple[str, str]:
        """Make the disk's clone in ``pool``; return its (path, format)."""
        assert disk.image is not None
        assert disk.clone is not None
        base = self.inspect(disk.image, disk.disk_format, vm)
        size = _wanted_size(disk, base, vm)
        if disk.clone is CloneMode.LINKED:
            xml = _volume_xml(f"{stem}.qcow2", size, "qcow2", backing=base)
            with self._client.errors(
                f"creating a linked clone of {base.path!r} in pool {pool.name()!r}", host=self._client.host, vm=vm
            ):
                volume = pool.createXML(xml, 0)
                created.append(volume)
                return volume.path(), "qcow2"
        name = f"{stem}.{_EXTENSIONS.get(base.format, 'img')}"
        doing = f"copying {base.path!r} into pool {pool.name()!r}"
        with self._client.errors(doing, host=self._client.host, vm=vm):
            if base.volume is not None:
                # The new volume's capacity is the size asked for: the test driver makes it so (and cannot resize),
                # QEMU's storage driver copies the base's size (then it is resized below).
                volume = pool.createXMLFrom(_volume_xml(name, size, base.format), base.volume, 0)
                created.append(volume)
            else:
                volume = pool.createXML(_volume_xml(name, MIB, base.format), 0)
                created.append(volume)
                with open(base.path, "rb") as source:
                    self._upload(volume, source, os.fstat(source.fileno()).st_size, doing, vm, deadline)
            if size > int(volume.info()[1]):
                volume.resize(size, 0)
            return volume.path(), base.format

    # -- seeds ---------------------------------------------------------------------------------------------------
    def seed(
        self,
        cloud_init: CloudInit,
        pool: libvirt.virStoragePool,
        stem: str,
        vm: str,
        created: list[libvirt.virStorageVol],
        deadline: Deadline,
    ) -> str:
        """Build the NoCloud seed ISO, upload it as a new raw volume of ``pool``; return the volume's path."""
        data = build_seed_iso(cloud_init)
        doing = f"uploading the cloud-init seed into pool {pool.name()!r}"
        with self._client.errors(doing, host=self._client.host, vm=vm):
            volume = pool.createXML(_volume_xml(f"{stem}-seed.iso", len(data), "raw"), 0)
            created.append(volume)
            self._upload(volume, _Bytes(data), len(data), doing, vm, deadline)
            path: str = volume.path()
            return path

    def _upload(
        self, volume: libvirt.virStorageVol, source: _Readable, length: int, doing: str, vm: str, deadline: Deadline
    ) -> None:
        """Send ``length`` bytes of ``source`` into the volume through a storage stream, chunk by chunk; the deadline
        is checked between chunks (the stream is aborted when it passes)."""
        conn = self._client.live()
        stream = conn.newStream(0)
        try:
            try:
                volume.upload(stream, 0, length, 0)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    raise UnsupportedError(
                        f"this libvirt driver cannot upload into storage volumes ({doing}); "
                        "clone a base that is a pool volume, or use a QEMU/KVM host",
                        feature=Feature.CLOUD_INIT if doing.startswith("uploading") else Feature.DISK_CLONE_COPY,
                        host=self._client.host,
                        vm=vm,
                    ) from error
                raise
            sent = 0
            while sent < length:
                if deadline.remaining() <= 0:
                    raise TimeoutError(
                        f"timed out after {deadline.timeout:g}s {doing} ({sent} of {length} bytes sent)",
                        host=self._client.host,
                        vm=vm,
                    )
                chunk = source.read(min(_CHUNK, length - sent))
                if not chunk:
                    raise ValidationError(
                        f"VM {vm!r}: the source ended after {sent} of {length} bytes ({doing})", field="disk.image"
                    )
                view = memoryview(chunk)
                while view:
                    written = stream.send(bytes(view))
                    view = view[written:]
                sent += len(chunk)
            stream.finish()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int) -> bytes:
        chunk = self._data[self._offset : self._offset + size]
        self._offset += len(chunk)
        return bytes(chunk)


def _wanted_size(disk: DiskSpec, base: BaseImage, vm: str) -> int:
    if disk.size_mib is None:
        return base.virtual_size
    size = disk.size_mib * MIB
    if size < base.virtual_size:
        base_mib = math.ceil(base.virtual_size / MIB)
        raise ValidationError(
            f"VM {vm!r}: disk.size_mib is {disk.size_mib} MiB but the base image {base.path!r} is {base_mib} MiB; "
            f"a clone only grows its base: ask for at least {base_mib} MiB or leave size_mib out",
            field="disk.size_mib",
        )
    return size


def _volume_xml(name: str, capacity: int, fmt: str, *, backing: BaseImage | None = None) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", {"unit": "bytes"}).text = str(capacity)
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", {"type": fmt})
    if backing is not None:
        store = ET.SubElement(volume, "backingStore")
        ET.SubElement(store, "path").text = backing.path
        ET.SubElement(store, "format", {"type": backing.format})
    return domainxml.to_text(volume)
