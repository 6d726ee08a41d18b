"""Disks and NICs of libvirt domains: networks for NICs, attaching and detaching.

Device XML is built with ElementTree (:mod:`.domainxml`); a detach hands libvirt the device's own XML as defined.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable

import libvirt

from polyvisor.backend_helpers import random_mac
from polyvisor.errors import NotFoundError, ValidationError
from polyvisor.model import DiskSpec, NicKind, NicSpec
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import DiskDevice, NicDevice
from polyvisor_libvirt.storage import Storage

__all__ = ["Devices"]

_MAC_PREFIX = "52:54:00"  # the prefix QEMU/KVM guests conventionally carry (locally administered MACs)


class Devices:
    """Disks and NICs, and the networks behind them, over one client."""

    def __init__(self, client: LibvirtClient, storage: Storage) -> None:
        self._client = client
        self._storage = storage

    def network_name(self, nic: NicSpec, vm: str) -> str:
        if nic.network is not None:
            conn = self._client.live()
            with self._client.errors(f"finding network {nic.network!r}", host=self._client.host, vm=vm):
                try:
                    conn.networkLookupByName(nic.network)
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                        raise
                    raise NotFoundError(
                        f"no network named {nic.network!r}; list them with connection.networks()",
                        host=self._client.host,
                        vm=vm,
                    ) from error
            return nic.network
        names: list[str] = []
        with contextlib.suppress(libvirt.libvirtError):
            names = [net.name() for net in self._client.conn.listAllNetworks()]
        if "default" in names or not names:
            return "default"
        if len(names) == 1:
            return names[0]
        raise ValidationError(
            f"VM {vm!r}: this host has several networks ({', '.join(sorted(names))}) and none is called "
            "'default'; name one in the NIC spec",
            field="nic.network",
        )

    def _change_device(self, uuid: str, element: ET.Element, *, live: bool, attach: bool, doing: str) -> None:
        dom = self._client.domain(uuid)
        xml = domainxml.to_text(element)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
        with self._client.errors(doing, host=self._client.host, vm=dom.name(), state=self._client.state_of(dom)):
            try:
                if attach:
                    dom.attachDeviceFlags(xml, flags)
                else:
                    dom.detachDeviceFlags(xml, flags)
            except libvirt.libvirtError as error:
                if live or error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                # Drivers without device calls (the test driver): change the persistent definition instead.
                self._redefine_devices(dom, element, attach=attach)
        self._client.cache.drop(dom.UUIDString())

    def _redefine_devices(self, dom: libvirt.virDomain, element: ET.Element, *, attach: bool) -> None:
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        devices = root.find("devices")
        if devices is None:
            devices = ET.SubElement(root, "devices")
        if attach:
            devices.append(element)
        else:
            for child in list(devices):
                if _same_device(child, element):
                    devices.remove(child)
        self._client.live().defineXML(domainxml.to_text(root))

    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Create (or use) the disk and attach it at the next free target on its bus."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        used = {d.target for d in definition.disks}
        index = 0
        while domainxml.target_name(disk.bus, index) in used:
            index += 1
        target = domainxml.target_name(disk.bus, index)
        created: list[libvirt.virStorageVol] = []
        path, fmt = self._storage.disk_source(disk, f"{definition.uuid}-{target}", definition.name, created)
        element = domainxml.disk_element(DiskDevice(path, target, disk.bus.value, fmt, readonly=disk.readonly))
        try:
            self._change_device(uuid, element, live=live, attach=True, doing=f"attaching disk {target}")
            if created:
                self._storage.set_owned(dom, (*definition.owned_volumes, path))
        except BaseException:
            self._storage.delete_volumes(created, definition.name)
            raise
        return target

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target; the volume stays (delete(storage=True) removes owned ones)."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        match = next((d for d in definition.disks if d.target == target), None)
        if match is None:
            raise NotFoundError(
                f"the VM has no disk {target!r} (it has {', '.join(d.target for d in definition.disks) or 'none'})",
                host=self._client.host,
                vm=definition.name,
            )
        element = self._device_element(dom, "disk", lambda el: _same_device(el, _target_probe(target)))
        self._change_device(uuid, element, live=live, attach=False, doing=f"detaching disk {target}")

    def _device_element(self, dom: libvirt.virDomain, tag: str, matches: Callable[[ET.Element], bool]) -> ET.Element:
        # libvirt matches a detach against the device as defined (a network NIC needs its source, a disk its
        # type), so hand it the device's own XML rather than a sketch of it.
        with self._client.errors("reading the VM definition", host=self._client.host, vm=dom.name()):
            root = ET.fromstring(dom.XMLDesc(0))
        found = next((el for el in root.iterfind(f"devices/{tag}") if matches(el)), None)
        if found is None:
            raise NotFoundError(f"the VM has no such {tag} any more", host=self._client.host, vm=dom.name())
        return found

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; a MAC is generated when none is given."""
        dom = self._client.domain(uuid)
        mac = nic.mac or random_mac(_MAC_PREFIX)
        network = None if nic.kind is NicKind.USER else self.network_name(nic, dom.name())
        element = domainxml.nic_element(NicDevice(network, mac, nic.model))
        where = "a user-mode NIC" if network is None else f"a NIC on {network!r}"
        self._change_device(uuid, element, live=live, attach=True, doing=f"attaching {where}")
        return mac

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        match = next((n for n in definition.nics if n.mac == mac), None)
        if match is None:
            raise NotFoundError(
                f"the VM has no NIC with MAC {mac} (it has {', '.join(n.mac for n in definition.nics) or 'none'})",
                host=self._client.host,
                vm=definition.name,
            )
        element = self._device_element(dom, "interface", lambda el: _same_device(el, _mac_probe(mac)))
        self._change_device(uuid, element, live=live, attach=False, doing=f"detaching NIC {mac}")


def _target_probe(target: str) -> ET.Element:
    element = ET.Element("disk")
    ET.SubElement(element, "target", {"dev": target})
    return element


def _mac_probe(mac: str) -> ET.Element:
    element = ET.Element("interface")
    ET.SubElement(element, "mac", {"address": mac})
    return element


def _same_device(existing: ET.Element, wanted: ET.Element) -> bool:
    if existing.tag != wanted.tag:
        return False
    if wanted.tag == "disk":
        a, b = existing.find("target"), wanted.find("target")
        return a is not None and b is not None and a.get("dev") == b.get("dev")
    a, b = existing.find("mac"), wanted.find("mac")
    return a is not None and b is not None and (a.get("address") or "").lower() == (b.get("address") or "").lower()
