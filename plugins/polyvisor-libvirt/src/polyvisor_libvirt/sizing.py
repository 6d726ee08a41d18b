"""Changing a domain's size: vCPUs and memory (stopped: a redefinition; running: hot-plug and the balloon), and
growing its disks (stopped: the pool volume; running: ``blockResize``).

Limits, as libvirt defines them: ``<vcpu>`` is the vCPU maximum and ``<vcpu current=...>`` the count a domain runs
with; ``<memory>`` is the most memory a running domain may have and ``<currentMemory>`` the balloon's size. A running
domain changes within those maxima only; a dynamic-memory minimum (polyvisor's metadata) bounds the balloon from
below. Live changes are made to the running domain and to its definition, so they outlast a restart.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, ValidationError
from polyvisor.model import DiskInfo
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import Definition

__all__ = ["Sizing", "redefine_size"]

MIB = 1024 * 1024


def redefine_size(xml: str, *, cpus: int | None, memory_mib: int | None, minimum_mib: int | None) -> str:
    """Return the inactive domain XML with new vCPUs (current and maximum) and/or memory.

    With a dynamic-memory minimum, ``memory_mib`` is the startup memory (``<currentMemory>``) and must lie between
    the minimum and ``<memory>``; without one it sets both. A CPU topology is reshaped to the new count (sockets
    when the count is a multiple of cores x threads, else one core and one thread per socket).
    """
    root = ET.fromstring(xml)
    if cpus is not None:
        vcpu = root.find("vcpu")
        if vcpu is None:
            vcpu = ET.SubElement(root, "vcpu")
        vcpu.text = str(cpus)
        vcpu.attrib.pop("current", None)
        listed = root.find("vcpus")
        position = list(root).index(vcpu) + 1
        if listed is not None:  # libvirt wants one entry per vCPU
            position = list(root).index(listed)
            root.remove(listed)
        if cpus > 1 and (listed is not None or root.get("type") in ("qemu", "kvm")):
            # QEMU unplugs only vCPUs marked hot-pluggable (see domainxml.vcpus_element).
            root.insert(position, domainxml.vcpus_element(cpus, cpus))
        topology = root.find("cpu/topology")
        if topology is not None:
            per_socket = 1
            for key in ("dies", "clusters", "cores", "threads"):
                per_socket *= int(topology.get(key, "1"))
            if cpus % per_socket == 0:
                topology.set("sockets", str(cpus // per_socket))
            else:
                for key in ("dies", "clusters", "cores", "threads"):
                    if key in topology.attrib:
                        topology.set(key, "1")
                topology.set("sockets", str(cpus))
    if memory_mib is not None:
        kib = str(memory_mib * 1024)
        current = root.find("currentMemory")
        if current is None:
            current = ET.SubElement(root, "currentMemory")
        current.text, current.attrib = kib, {"unit": "KiB"}
        if minimum_mib is None:
            memory = root.find("memory")
            if memory is None:
                memory = ET.SubElement(root, "memory")
            memory.text, memory.attrib = kib, {"unit": "KiB"}
    return domainxml.to_text(root)


class Sizing:
    """vCPUs, memory and disk sizes of domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        """Change vCPUs and/or memory of a stopped domain (redefined) or a running one (within its maxima)."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        self._check_memory(definition, memory_mib, live=live)
        if live and cpus is not None and cpus > definition.max_cpus:
            raise ValidationError(
                f"VM {definition.name!r} runs with at most {definition.max_cpus} vCPU(s), the maximum it was "
                f"defined with; ask for {definition.max_cpus} or fewer, or stop it and reconfigure it to {cpus}",
                field="cpus",
            )
        doing = "reconfiguring CPUs and memory" + (" live" if live else "")
        deadline.check(doing, host=self._client.host, vm=definition.name)
        with self._client.errors(doing, host=self._client.host, vm=definition.name, state=self._client.state_of(dom)):
            if live:
                # The running domain first, then its definition (some drivers refuse both flags in one call).
                scopes = [libvirt.VIR_DOMAIN_AFFECT_LIVE]
                if dom.isPersistent():
                    scopes.append(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                for scope in scopes:
                    if cpus is not None:
                        dom.setVcpusFlags(cpus, scope)
                    if memory_mib is not None:
                        dom.setMemoryFlags(memory_mib * 1024, scope)
            else:
                xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
                new = redefine_size(xml, cpus=cpus, memory_mib=memory_mib, minimum_mib=definition.memory_minimum_mib)
                self._client.live().defineXML(new)
        self._client.cache.drop(definition.uuid)

    @staticmethod
    def _check_memory(definition: Definition, memory_mib: int | None, *, live: bool) -> None:
        if memory_mib is None:
            return
        minimum = definition.memory_minimum_mib
        maximum = definition.memory_mib
        bounded = live or minimum is not None  # a stopped VM without dynamic memory takes any size
        if bounded and memory_mib > maximum:
            what = "the dynamic-memory maximum" if minimum is not None else "the memory it was started with"
            raise ValidationError(
                f"VM {definition.name!r} may have at most {maximum} MiB ({what}); ask for {maximum} MiB or less"
                + (", or stop it to give it more" if live else ""),
                field="memory_mib",
            )
        if minimum is not None and memory_mib < minimum:
            raise ValidationError(
                f"VM {definition.name!r} has a dynamic-memory minimum of {minimum} MiB; ask for {minimum} MiB or more",
                field="memory_mib",
            )

    def disks(self, uuid: str) -> list[DiskInfo]:
        """The domain's hard disks with their virtual sizes (``blockInfo``: QEMU's answer while it runs, the image's
        header while it is stopped)."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        out = []
        with self._client.errors("reading the disks' sizes", host=self._client.host, vm=definition.name):
            for disk in definition.disks:
                if disk.device == "disk":
                    capacity = int(dom.blockInfo(disk.target, 0)[0])
                    out.append(DiskInfo(disk.target, disk.path, capacity, readonly=disk.readonly))
        return out

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        """Grow a disk: the pool volume of a stopped domain, or through QEMU (``blockResize``) while it runs."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        disks = [disk for disk in definition.disks if disk.device == "disk"]
        disk = next((disk for disk in disks if disk.target == target), None)
        if disk is None:
            raise NotFoundError(
                f"the VM has no disk {target!r}; its disks are {', '.join(d.target for d in disks) or 'none'}",
                host=self._client.host,
                vm=definition.name,
            )
        doing = f"resizing disk {target}"
        deadline.check(doing, host=self._client.host, vm=definition.name)
        with self._client.errors(doing, host=self._client.host, vm=definition.name, state=self._client.state_of(dom)):
            running = bool(dom.isActive())
            volume = None
            if running:
                capacity = int(dom.blockInfo(target, 0)[0])
            else:
                volume = self._volume(disk.path, target, definition.name)
                capacity = int(volume.info()[1])
            size = size_mib * MIB
            if size < capacity:
                have = math.ceil(capacity / MIB)
                raise ValidationError(
                    f"disk {target} is {have} MiB; resize_disk only grows: ask for more than {have}",
                    field="size_mib",
                )
            if size == capacity:
                return
            deadline.check(doing, host=self._client.host, vm=definition.name)
            if volume is None:
                dom.blockResize(target, size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            else:
                volume.resize(size, 0)
        self._client.cache.drop(definition.uuid)

    def _volume(self, path: str | None, target: str, vm: str) -> libvirt.virStorageVol:
        error: libvirt.libvirtError | None = None
        if path is not None:
            try:
                return self._client.live().storageVolLookupByPath(path)
            except libvirt.libvirtError as failed:
                error = failed
        raise ValidationError(
            f"VM {vm!r}: disk {target} ({path}) is not a volume of a storage pool, and libvirt resizes only pool "
            "volumes of a stopped VM; start the VM to resize it live, or put the file in a pool",
            field="target",
        ) from error
