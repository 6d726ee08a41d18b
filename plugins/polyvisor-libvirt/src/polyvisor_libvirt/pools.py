"""The host's storage as polyvisor values: storage pools and their volumes, directory pools and volumes made and
deleted, and which domains use a volume.

A pool's listing is ``listAllVolumes`` after a ``refresh`` (so files placed by other means show), then each volume's
XML (libvirt has no bulk call for volume facts). A new pool is a ``dir`` pool, defined, built (its directory made)
and started; deleting one stops it, deletes its directory (libvirt refuses one that is not empty) and undefines
it. A volume is *used* by a domain whose disk is the volume or has it in its backing chain (a linked clone's base);
deleting such a volume raises InUseError naming the domains, and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

import libvirt

from polyvisor.errors import InUseError, NotFoundError, ValidationError
from polyvisor.storage import StoragePool, Volume, VolumeFormat, is_partial
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["DEFAULT_POOL_ROOT", "Pools", "volume_format", "volume_xml"]

DEFAULT_POOL_ROOT = "/var/lib/libvirt/images"
"""Where a new pool's directory goes when no path is given (``<root>/<name>``)."""

_FORMATS = {"qcow2": VolumeFormat.QCOW2, "raw": VolumeFormat.RAW, "vhdx": VolumeFormat.VHDX, "vpc": VolumeFormat.VHD}
_FORMATS["iso"] = VolumeFormat.ISO
_QEMU_NAMES = {VolumeFormat.QCOW2: "qcow2", VolumeFormat.RAW: "raw", VolumeFormat.VHDX: "vhdx", VolumeFormat.VHD: "vpc"}


def volume_format(xml_root: ET.Element) -> VolumeFormat:
    """The polyvisor format of a volume from its XML (``target/format``)."""
    fmt = xml_root.find("target/format")
    name = fmt.get("type", "raw") if fmt is not None else "raw"
    return _FORMATS.get(name, VolumeFormat.OTHER)


def volume_xml(name: str, capacity: int, fmt: VolumeFormat) -> str:
    """The XML of a new volume (``capacity`` bytes)."""
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", {"unit": "bytes"}).text = str(capacity)
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", {"type": _QEMU_NAMES.get(fmt, "raw")})
    return domainxml.to_text(root)


class Pools:
    """Storage pools and volumes over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    @property
    def host(self) -> str:
        return self._client.host

    # -- finding -----------------------------------------------------------------------------------------------
    def pool(self, name: str | None) -> libvirt.virStoragePool:
        """The pool named ``name``; without a name the one called "default", else the only one."""
        conn = self._client.live()
        with self._client.errors("listing storage pools", host=self.host):
            pools = conn.listAllStoragePools(0)
        by_name = {pool.name(): pool for pool in pools}
        if name is not None:
            if name not in by_name:
                raise NotFoundError(
                    f"no storage pool named {name!r} (pools: {', '.join(sorted(by_name)) or 'none'})", host=self.host
                )
            return by_name[name]
        if "default" in by_name:
            return by_name["default"]
        if len(pools) == 1:
            return pools[0]
        raise NotFoundError(
            f"no storage pool named 'default' (pools: {', '.join(sorted(by_name)) or 'none'}); name one with pool=",
            host=self.host,
        )

    def volume(self, pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol:
        """The volume ``name`` of ``pool`` (NotFoundError naming both)."""
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise NotFoundError(
                    f"pool {pool.name()!r} has no volume named {name!r}; list them with volumes()", host=self.host
                ) from error
            with self._client.errors(f"finding volume {name!r}", host=self.host):
                raise

    # -- values --------------------------------------------------------------------------------------------------
    def pools(self) -> list[StoragePool]:
        """Every pool: listAllStoragePools, then each pool's info and XML."""
        conn = self._client.live()
        out = []
        with self._client.errors("listing storage pools", host=self.host):
            for pool in conn.listAllStoragePools(0):
                try:
                    out.append(self.value(pool))
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                        raise
                    # deleted between the listing and its reading (by another client): it is not there
        return sorted(out, key=lambda pool: pool.name)

    def value(self, pool: libvirt.virStoragePool) -> StoragePool:
        state, capacity, allocation, available = pool.info()
        root = ET.fromstring(pool.XMLDesc(0))
        active = state == libvirt.VIR_STORAGE_POOL_RUNNING
        known = active or state == libvirt.VIR_STORAGE_POOL_DEGRADED
        return StoragePool(
            name=pool.name(),
            kind=root.get("type", ""),
            path=root.findtext("target/path"),
            capacity=int(capacity) if known else None,
            allocation=int(allocation) if known else None,
            available=int(available) if known else None,
            active=active,
            extra={"uuid": pool.UUIDString(), "autostart": bool(pool.autostart())},
        )

    def volumes(self, name: str | None) -> list[Volume]:
        """The volumes of a pool: refreshed, listed, each one's XML read."""
        pool = self.pool(name)
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)  # refused while an upload runs in the pool (asynchronous jobs): list what is known
        out = []
        with self._client.errors(f"listing the volumes of pool {pool.name()!r}", host=self.host):
            for vol in pool.listAllVolumes(0):
                try:
                    out.append(self.volume_value(pool, vol))
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                        raise
                    # deleted between the listing and its reading: an upload's temporary volume, say
        return sorted(out, key=lambda v: v.name)

    def volume_value(self, pool: libvirt.virStoragePool, vol: libvirt.virStorageVol) -> Volume:
        root = ET.fromstring(vol.XMLDesc(0))
        name = vol.name()
        return Volume(
            name=name,
            pool=pool.name(),
            path=vol.path(),
            format=volume_format(root),
            capacity=int(root.findtext("capacity") or 0),
            allocation=int(root.findtext("allocation") or 0),
            partial=is_partial(name),
        )

    # -- pools ---------------------------------------------------------------------------------------------------
    def create_pool(self, name: str, path: str | None) -> StoragePool:
        """Define, build and start a ``dir`` pool at ``path`` (default ``/var/lib/libvirt/images/<name>``)."""
        target = path or f"{DEFAULT_POOL_ROOT}/{name}"
        if not target.startswith("/"):
            raise ValidationError(f"{target!r} is not an absolute path on the host", field="path")
        root = ET.Element("pool", {"type": "dir"})
        ET.SubElement(root, "name").text = name
        ET.SubElement(ET.SubElement(root, "target"), "path").text = target
        conn = self._client.live()
        with self._client.errors(f"creating storage pool {name!r} at {target}", host=self.host):
            pool = conn.storagePoolDefineXML(domainxml.to_text(root), 0)
            try:
                pool.build(0)
                pool.create(0)
                pool.setAutostart(1)
            except libvirt.libvirtError:
                with contextlib.suppress(libvirt.libvirtError):
                    pool.undefine()
                raise
            return self.value(pool)

    def delete_pool(self, name: str) -> None:
        """Stop, delete (its directory: only when empty) and undefine the pool."""
        pool = self.pool(name)
        with self._client.errors(f"deleting storage pool {name!r}", host=self.host):
            if pool.isActive():
                with contextlib.suppress(libvirt.libvirtError):
                    pool.refresh(0)
                held = pool.listVolumes()
                if held:
                    raise InUseError(
                        f"pool {name!r} still holds {len(held)} volume(s) ({', '.join(sorted(held)[:5])}); delete "
                        "them first",
                        users=(),
                        host=self.host,
                    )
                pool.destroy()
            pool.delete(libvirt.VIR_STORAGE_POOL_DELETE_NORMAL)
            pool.undefine()

    # -- volumes -------------------------------------------------------------------------------------------------
    def create_volume(self, name: str | None, volume: str, size: int, fmt: VolumeFormat) -> Volume:
        pool = self.pool(name)
        with self._client.errors(f"creating volume {volume!r} in pool {pool.name()!r}", host=self.host):
            return self.volume_value(pool, pool.createXML(volume_xml(volume, size, fmt), 0))

    def resize_volume(self, name: str | None, volume: str, size: int) -> Volume:
        pool = self.pool(name)
        vol = self.volume(pool, volume)
        with self._client.errors(f"resizing volume {volume!r}", host=self.host):
            vol.resize(size, 0)
            return self.volume_value(pool, vol)

    def delete_volume(self, name: str | None, volume: str) -> None:
        pool = self.pool(name)
        vol = self.volume(pool, volume)
        with self._client.errors(f"deleting volume {volume!r}", host=self.host):
            path = vol.path()  # raises if another client deleted it since the lookup
        users = self.users(path)
        if users:
            listed = ", ".join(repr(user) for user in users)
            raise InUseError(
                f"volume {volume!r} ({path}) is used by {'VM' if len(users) == 1 else 'VMs'} {listed}; delete or "
                "detach their disks first",
                users=users,
                host=self.host,
            )
        with self._client.errors(f"deleting volume {volume!r}", host=self.host):
            vol.delete(0)

    def users(self, path: str) -> list[str]:
        """The domains with a disk at ``path`` or backed by it (one level of backing store, read from the pools)."""
        conn = self._client.live()
        users = []
        with self._client.errors("listing the VMs that use a volume", host=self.host):
            for dom in conn.listAllDomains(0):
                disks = [disk.path for disk in domainxml.parse_definition(dom.XMLDesc(0)).disks if disk.path]
                if path in disks or any(self._backing(disk) == path for disk in disks):
                    users.append(dom.name())
        return sorted(users)

    def _backing(self, path: str) -> str | None:
        try:
            vol = self._client.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            return None
        return ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
