"""Where a libvirt domain's disks live: storage pools, the volumes made in them for new disks, and which volumes a
domain owns.

A volume polyvisor makes for a VM is recorded in the domain's metadata (:func:`.domainxml.owned_xml`), so
``delete(storage=True)`` removes exactly those; a disk given as ``image=`` is never recorded, and stays. Images
cloned from a base and cloud-init seeds are made in :mod:`.images`, in the pools chosen here.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePath

import libvirt

from polyvisor.errors import NotFoundError
from polyvisor.model import DiskFormat, DiskSpec
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import Definition

__all__ = ["Storage"]

log = logging.getLogger("polyvisor.libvirt")

_EXTENSIONS = {DiskFormat.QCOW2: "qcow2", DiskFormat.RAW: "img", DiskFormat.VHDX: "vhdx", DiskFormat.VHD: "vhd"}
_QEMU_FORMATS = {DiskFormat.QCOW2: "qcow2", DiskFormat.RAW: "raw", DiskFormat.VHDX: "vhdx", DiskFormat.VHD: "vpc"}
_FORMAT_BY_SUFFIX = {".qcow2": "qcow2", ".img": "raw", ".raw": "raw", ".iso": "raw", ".vhdx": "vhdx", ".vhd": "vpc"}


class Storage:
    """Pools, and the volumes of domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def disk_source(
        self, disk: DiskSpec, volume_stem: str, vm: str, created: list[libvirt.virStorageVol]
    ) -> tuple[str, str]:
        """Return the (path, format) of a disk that clones nothing: its ``image``, or a new volume (in ``created``)."""
        if disk.image is not None:
            self.require_file(disk.image, vm, "disk image")
            fmt = _QEMU_FORMATS[disk.disk_format] if disk.disk_format else _guess_format(disk.image)
            return disk.image, fmt
        pool = self.pool(disk.pool, vm)
        fmt = disk.disk_format or DiskFormat.QCOW2
        volume_xml = ET.Element("volume")
        ET.SubElement(volume_xml, "name").text = f"{volume_stem}.{_EXTENSIONS[fmt]}"
        ET.SubElement(volume_xml, "capacity", {"unit": "MiB"}).text = str(disk.size_mib)
        target = ET.SubElement(volume_xml, "target")
        ET.SubElement(target, "format", {"type": _QEMU_FORMATS[fmt]})
        with self._client.errors(
            f"creating a {disk.size_mib} MiB volume in pool {pool.name()!r}", host=self._client.host, vm=vm
        ):
            volume = pool.createXML(domainxml.to_text(volume_xml), 0)
            created.append(volume)
            return volume.path(), _QEMU_FORMATS[fmt]

    def require_file(self, path: str, vm: str, what: str) -> None:
        """Refuse a missing image up front: known to a storage pool, or (on a local host) present on disk."""
        try:
            self._client.live().storageVolLookupByPath(path)
            return
        except libvirt.libvirtError:
            pass
        if not self._client.uri.is_local or Path(path).exists():
            return  # a remote host's files cannot be checked from here; libvirt reports them at start
        raise NotFoundError(
            f"the {what} {path!r} does not exist on this host; check the path (or create it) and retry",
            host=self._client.host,
            vm=vm,
        )

    def pool(self, name: str | None, vm: str) -> libvirt.virStoragePool:
        """The pool named ``name``, else the one called "default", else the only one."""
        conn = self._client.live()
        if name is not None:
            with self._client.errors(f"finding storage pool {name!r}", host=self._client.host, vm=vm):
                return conn.storagePoolLookupByName(name)
        with self._client.errors("listing storage pools", host=self._client.host, vm=vm):
            pools = conn.listAllStoragePools()
        by_name = {pool.name(): pool for pool in pools}
        if "default" in by_name:
            return by_name["default"]
        if len(pools) == 1:
            return pools[0]
        raise NotFoundError(
            f"no storage pool named 'default' (pools: {', '.join(sorted(by_name)) or 'none'}); "
            "create one (virsh pool-define-as default dir --target /var/lib/libvirt/images) or set disk.pool",
            host=self._client.host,
            vm=vm,
        )

    def clone_pool(self, disk: DiskSpec, vm: str) -> libvirt.virStoragePool:
        """Where a clone of ``disk.image`` goes: ``disk.pool``, else the pool holding the base, else :meth:`pool`.

        A base image that is a volume keeps its clones beside it, so a host with several pools and none called
        "default" still clones without being told where.
        """
        if disk.pool is None and disk.image is not None:
            try:
                return self._client.live().storageVolLookupByPath(disk.image).storagePoolLookupByVolume()
            except libvirt.libvirtError:
                pass  # a plain file, not a volume of any pool
        return self.pool(disk.pool, vm)

    def set_owned(self, dom: libvirt.virDomain, paths: Sequence[str]) -> None:
        """Record ``paths`` as the volumes the domain owns (those ``delete(storage=True)`` removes)."""
        with self._client.errors("recording the VM's volumes", host=self._client.host, vm=dom.name()):
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                domainxml.owned_xml(paths) if paths else None,
                domainxml.STORAGE_PREFIX if paths else None,
                domainxml.STORAGE_NS,
                self._client.affect(dom),
            )
        self._client.cache.drop(dom.UUIDString())

    def volumes_to_delete(self, definition: Definition, *, storage: bool) -> list[libvirt.virStorageVol]:
        """The volumes that go with the domain: those it owns with ``storage``, else only its cloud-init seed.

        The seed (an owned volume attached as a CD-ROM) is part of the VM, not storage a caller keeps. A volume
        that is already gone is logged and left out.
        """
        volumes: list[libvirt.virStorageVol] = []
        owned = set(definition.owned_volumes)
        seeds = {disk.path for disk in definition.disks if disk.device == "cdrom" and disk.path in owned}
        for path in definition.owned_volumes:
            if storage or path in seeds:
                try:
                    volumes.append(self._client.conn.storageVolLookupByPath(path))
                except libvirt.libvirtError:
                    log.warning("volume %s of VM %r is already gone on %s", path, definition.name, self._client.host)
        return volumes

    def delete_volumes(self, volumes: Sequence[libvirt.virStorageVol], vm: str) -> None:
        """Delete volumes made for a VM that did not come to be (best effort: failures are logged)."""
        for volume in volumes:
            try:
                volume.delete(0)
            except libvirt.libvirtError:
                log.warning("could not delete volume %s created for VM %r on %s", volume.path(), vm, self._client.host)


def _guess_format(path: str) -> str:
    suffix = PurePath(path).suffix.lower()
    return _FORMAT_BY_SUFFIX.get(suffix, "raw")
