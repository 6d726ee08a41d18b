"""What libvirt says about the host and its domains: host facts, bulk listings, one domain's facts,
labels, features and console.

Listing reads states in bulk (``getAllDomainStats`` plus one ``listAllDomains`` filtered on managed-save images).
Definition facts (cpus, memory, labels, description) come from the client's cache of parsed domain XML, which
libvirt's own events keep coherent; a listing carries them only for domains in the cache, and :meth:`Inventory.info`
reads them. So a listing costs two calls whatever the number of VMs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import libvirt

from polyvisor.errors import PolyvisorError, UnsupportedError
from polyvisor.model import (
    Architecture,
    DynamicMemory,
    Feature,
    GuestArchitecture,
    HostInfo,
    PowerState,
    VMDetails,
    VMInfo,
    VMStatus,
    device_facts,
)
from polyvisor_libvirt import domainxml, machines
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import Definition
from polyvisor_libvirt.probe import HostCaps, kvm_usable
from polyvisor_libvirt.states import to_status

__all__ = ["Inventory"]

_STATS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON


class Inventory:
    """Facts of the host and its domains (listings, labels, features), over one client."""

    def __init__(self, client: LibvirtClient, host_caps: HostCaps) -> None:
        self._client = client
        self._host_caps = host_caps

    def host_info(self) -> HostInfo:
        """Facts from getInfo, getHostname, getVersion/getLibVersion and the capabilities."""
        conn = self._client.live()
        with self._client.errors("reading host facts", host=self._client.host):
            model, memory_mib, cpus, *_ = conn.getInfo()
            hostname = conn.getHostname()
            hypervisor = conn.getType()
            version = conn.getVersion()
            lib_version = conn.getLibVersion()
            # The test driver returns its cells' free KiB where the API promises bytes; leave it to the caller to
            # compute from the VMs rather than report a figure a thousand times too small.
            free = None if self._client.uri.driver == "test" else conn.getFreeMemory() // (1024 * 1024)
        return HostInfo(
            hostname=hostname,
            hypervisor=f"libvirt/{hypervisor}",
            hypervisor_version=_version(version),
            cpus=cpus,
            memory_mib=memory_mib,
            arch=self._host_caps.arch or model,
            extra=MappingProxyType({"libvirt_version": _version(lib_version), "driver": self._client.uri.driver}),
            free_memory_mib=free,
            architectures=self._architectures(),
        )

    def _architectures(self) -> tuple[GuestArchitecture, ...]:
        """The architectures of the capabilities' ``<guest>`` entries that a spec can name, the host's first: how
        each runs (a ``kvm`` domain type only where KVM really works), the machine polyvisor gives it and what its
        VMs lack (:mod:`.machines`; on QEMU drivers only, as the planner applies them)."""
        qemu = self._client.uri.driver in ("qemu", "kvm")
        known = {arch.value for arch in Architecture}
        domain_types: dict[str, set[str]] = {}
        for guest in self._host_caps.guests:
            if guest.arch in known and guest.os_type == "hvm":
                domain_types.setdefault(guest.arch, set()).update(guest.domain_types)
        out = []
        for arch in sorted(domain_types, key=lambda name: (name != self._host_caps.arch, name)):
            types = domain_types[arch]
            accelerators: tuple[str, ...] = ()
            if qemu:
                kvm = "kvm" in types and kvm_usable(self._client.conn, local=self._client.uri.is_local, arch=arch)
                accelerators = (("kvm",) if kvm else ()) + (("tcg",) if "qemu" in types else ())
            machine = machines.machine_of(arch) if qemu else None
            out.append(
                GuestArchitecture(
                    arch,
                    accelerators,
                    machine.name if machine is not None else None,
                    MappingProxyType(dict(machine.lacks)) if machine is not None else MappingProxyType({}),
                )
            )
        return tuple(out)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Replace the labels element in the domain's metadata (live and persistent)."""
        with self._client.acting(uuid, "setting labels") as dom:
            xml = domainxml.labels_xml(labels) if labels else None
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                xml,
                domainxml.LABELS_PREFIX if xml else None,
                domainxml.LABELS_NS,
                self._client.affect(dom),
            )
            self._client.cache.drop(dom.UUIDString())

    def probe_vm_features(self, uuid: str, features: frozenset[Feature]) -> frozenset[Feature]:
        """Narrow the connection's ``features`` to what this VM's definition allows."""
        narrowed = set(features)
        if self._client.uri.driver in ("qemu", "kvm"):
            definition = self._client.definition(self._client.domain(uuid), fresh=False)
            if not definition.guest_agent:
                narrowed -= {Feature.SHUTDOWN_AGENT, Feature.GUEST_EXEC, Feature.GUEST_FILES}
            if not definition.console_pty:
                narrowed.discard(Feature.CONSOLE_STREAM)  # libvirt streams only a pty-backed console
            if not definition.serial_logs:
                narrowed.discard(Feature.CONSOLE)
            if not definition.balloon:
                narrowed.discard(Feature.RECONFIGURE_LIVE_MEMORY)  # <memballoon model='none'/>
            if not definition.graphics:
                narrowed.discard(Feature.GRAPHICS)
            if not [model for model in definition.video_models if model != "none"]:
                narrowed.discard(Feature.SCREENSHOT)  # libvirt adds a video device with a console; none without
            if definition.arch:
                narrowed -= set(machines.lacking(definition.arch))  # what the architecture's machine cannot do
            disks = [disk for disk in definition.disks if disk.device == "disk"]
            if definition.domain_type != "kvm":
                narrowed.discard(Feature.NESTED_VIRTUALIZATION)  # a TCG guest sees no VT-x
            if any(disk.format != "qcow2" for disk in disks) or definition.uefi:
                # Internal snapshots (the only revertible kind here) need qcow2 disks and no pflash NVRAM.
                narrowed -= {Feature.SNAPSHOTS, Feature.SNAPSHOT_MEMORY, Feature.SNAPSHOT_DESCRIPTION}
        return frozenset(narrowed)

    def list_vms(self) -> list[VMInfo]:
        """Every domain in two bulk calls, whatever their number.

        Names, UUIDs and states come from the bulk calls. The details (CPUs, memory, labels, description) need
        the domain XML, which libvirt cannot return in bulk: they come from the definition cache when libvirt has
        not reported a change since it was read, and are otherwise left out (``details=None``; :meth:`info`
        reads them).
        """
        conn = self._client.live()
        with self._client.errors("listing VMs", host=self._client.host):
            try:
                stats = conn.getAllDomainStats(_STATS)
            except libvirt.libvirtError as error:
                if error.get_error_code() not in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
            saved = {dom.UUIDString() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
        out = []
        for dom, record in stats:
            uuid = dom.UUIDString()
            status = to_status(
                int(record.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)),
                int(record.get("state.reason", 0)),
                managed_save=uuid in saved,
            )
            cached = self._client.cache.get(uuid)
            if cached is not None:
                out.append(self._info(cached, status, record))
                continue
            out.append(VMInfo(uuid, dom.name(), status, has_saved_state=status.state is PowerState.SAVED))
        return out

    def lookup(self, ref: str) -> VMInfo:
        """Find a domain by UUID or name: identity and status (details only when the cache has them)."""
        dom = self._client.domain(ref)
        uuid, name = dom.UUIDString(), dom.name()
        status = self._client.status(dom, name)
        cached = self._client.cache.get(uuid)
        if cached is not None:
            return self._info(cached, status, {})
        return VMInfo(uuid, name, status, has_saved_state=status.state is PowerState.SAVED)

    def info(self, uuid: str) -> VMInfo:
        """The domain with its details, read afresh (and kept in the cache for later listings)."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=True)
        return self._info(definition, self._client.status(dom, definition.name), {})

    def status(self, uuid: str) -> VMStatus:
        """The domain's state, reason and managed-save image, without reading its XML."""
        dom = self._client.domain(uuid)
        return self._client.status(dom, uuid)

    def _info(self, definition: Definition, status: VMStatus, record: Mapping[str, Any]) -> VMInfo:
        return VMInfo(
            definition.uuid,
            definition.name,
            status,
            has_saved_state=status.state is PowerState.SAVED,
            details=self._details(definition, record),
        )

    @staticmethod
    def _details(definition: Definition, record: Mapping[str, Any]) -> VMDetails:
        # The memory the VM has now: the balloon's size (a running domain's <currentMemory> tracks it), which is
        # its <memory> unless the balloon or a reconfigure() moved it; a stopped VM's startup memory.
        cpus = int(record.get("vcpu.current", definition.cpus))
        memory_kib = record.get("balloon.current")
        memory = int(memory_kib) // 1024 if memory_kib else definition.current_memory_mib
        dynamic = None
        if definition.memory_minimum_mib is not None:
            dynamic = DynamicMemory(min(definition.memory_minimum_mib, definition.memory_mib), definition.memory_mib)
        return VMDetails(
            cpus=cpus,
            memory_mib=memory,
            labels=MappingProxyType(dict(definition.labels)),
            description=definition.description,
            dynamic_memory=dynamic,
            extra=MappingProxyType(
                {
                    "arch": definition.arch,
                    "domain_type": definition.domain_type,
                    "owned_volumes": definition.owned_volumes,
                    "max_cpus": definition.max_cpus,
                    "max_memory_mib": definition.memory_mib,
                    "forwards": [forward.fact(nic.mac) for nic in definition.nics for forward in nic.forwards],
                    **device_facts(
                        definition.devices.tpm_version, definition.devices.nested, definition.devices.host_devices
                    ),
                }
            ),
        )

    def console_output(self, uuid: str) -> str:
        """The serial log file of a local domain."""
        dom = self._client.domain(uuid)
        definition = self._client.definition(dom, fresh=False)
        if not definition.serial_logs or not self._client.uri.is_local:
            raise UnsupportedError(
                "this VM has no serial log file on this host; define it with a <serial> log",
                feature=Feature.CONSOLE,
                host=self._client.host,
                vm=definition.name,
            )
        try:
            with open(definition.serial_logs[0], "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""  # the guest has not run yet
        except OSError as error:
            raise PolyvisorError(
                f"cannot read the serial log {definition.serial_logs[0]}: {error}; check its permissions",
                host=self._client.host,
                vm=definition.name,
            ) from error


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1000)
    return f"{major}.{minor}.{release}"
