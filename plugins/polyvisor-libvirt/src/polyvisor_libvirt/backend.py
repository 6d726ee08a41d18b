"""The libvirt backend: one :class:`LibvirtBackend` per open libvirt connection, a facade over its parts.

* :mod:`.client`: the connection (reopened after it drops), error mapping, deadline-bounded jobs;
* :mod:`.events`: event registrations, subscriptions and the definition cache they keep coherent;
* :mod:`.inventory`: bulk listings (a constant number of calls), one domain's facts, guest addresses, console;
* :mod:`.planner`: spec -> domain plan, host-free; :mod:`.storage`: pools and volumes; :mod:`.devices`: networks,
  disk/NIC attach;
* :mod:`.snapshots`: internal snapshots;
* :mod:`.lifecycle`: creation, deletion and the power verbs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

import libvirt

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import (
    ValidationError,
)
from polyvisor.model import (
    AddressAnswer,
    DiskSpec,
    Feature,
    GuestAddress,
    HostInfo,
    NetworkInfo,
    NicSpec,
    ShutdownMode,
    Snapshot,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.uri import URI
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.addresses import Addresses
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.devices import Devices
from polyvisor_libvirt.images import Images
from polyvisor_libvirt.inventory import Inventory
from polyvisor_libvirt.lifecycle import Lifecycle
from polyvisor_libvirt.probe import probe_connection, read_host_caps
from polyvisor_libvirt.sizing import Sizing
from polyvisor_libvirt.snapshots import Snapshots
from polyvisor_libvirt.storage import Storage

__all__ = ["LibvirtBackend"]

log = logging.getLogger("polyvisor.libvirt")

_KNOWN_OPTIONS = frozenset({"readonly"})


class LibvirtBackend(Backend):
    """A polyvisor backend over one libvirt connection (any libvirt URI)."""

    name: ClassVar[str] = "libvirt"
    # Everything some libvirt driver can do; probe_features() narrows it to this connection's driver and host.
    option_features: ClassVar[frozenset[Feature]] = frozenset(
        {
            Feature.SHUTDOWN_ACPI,
            Feature.SHUTDOWN_AGENT,
            Feature.DELETE_STORAGE,
            Feature.DIRECT_KERNEL_BOOT,
            Feature.UEFI,
            Feature.SECURE_BOOT,
            Feature.ACCELERATOR_CHOICE,
            Feature.ARCHITECTURE_CHOICE,
            Feature.READONLY_DISK,
            Feature.SNAPSHOT_MEMORY,
            Feature.SNAPSHOT_DESCRIPTION,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
            Feature.DISK_CLONE_LINKED,
            Feature.DISK_CLONE_COPY,
            Feature.CLOUD_INIT,
            Feature.DYNAMIC_MEMORY,
            Feature.RECONFIGURE_LIVE_CPUS,
            Feature.RECONFIGURE_LIVE_MEMORY,
        }
    )
    address_sources: ClassVar[tuple[str, ...]] = ("agent", "lease", "arp")

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        unknown = sorted(set(credentials.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ValidationError(
                f"the libvirt backend does not know the option(s) {', '.join(unknown)}; "
                f"it accepts username, password and {', '.join(sorted(_KNOWN_OPTIONS))}",
                field="options",
            )
        self.uri = uri
        self.host = uri.display_host
        self._client = LibvirtClient(uri, credentials)
        self._snapshots = Snapshots(self._client)
        self._storage = Storage(self._client)
        self._devices = Devices(self._client, self._storage)
        self._images = Images(self._client)
        self._sizing = Sizing(self._client)
        self._addresses = Addresses(self._client)
        self._inventory = Inventory(self._client)
        try:
            self._host_caps = read_host_caps(self._client)
            self._features = probe_connection(self._client, self._host_caps)
        except BaseException:
            self.close()  # no caller will ever close a backend that was not returned
            raise
        if uri.driver in ("qemu", "kvm"):
            # An ACPI press that arrives before the guest's ACPI daemon runs is lost: have the core repeat it.
            self.shutdown_retry_interval = 2.0
        self._lifecycle = Lifecycle(
            self._client,
            self._host_caps,
            inventory=self._inventory,
            storage=self._storage,
            devices=self._devices,
            images=self._images,
            acpi_shutdown=self.shutdown_retry_interval is not None,
        )

    # -- connection -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Deregister callbacks and close the connection; safe to call twice."""
        self._client.close()

    def subscribe(self, sink: EventSink) -> Subscription:
        """Lifecycle events (libvirt's, via the connection's one registration) until the returned callable runs."""
        self._client.live()
        if not self._client.events.available:
            return super().subscribe(sink)
        return self._client.events.subscribe(sink)

    # -- capabilities -----------------------------------------------------------------------------------------
    def probe_features(self) -> frozenset[Feature]:
        """The features of this connection's driver (probed at connect)."""
        return self._features

    def probe_vm_features(self, uuid: str) -> frozenset[Feature]:
        """Narrow the connection's features to what this VM's definition allows."""
        features = set(self._features)
        if self.uri.driver in ("qemu", "kvm"):
            definition = self._client.definition(self._client.domain(uuid), fresh=False)
            if not definition.guest_agent:
                features.discard(Feature.SHUTDOWN_AGENT)
            if not definition.serial_logs:
                features.discard(Feature.CONSOLE)
            if not definition.balloon:
                features.discard(Feature.RECONFIGURE_LIVE_MEMORY)  # <memballoon model='none'/>
            disks = [disk for disk in definition.disks if disk.device == "disk"]
            if any(disk.format != "qcow2" for disk in disks) or definition.uefi:
                # Internal snapshots (the only revertible kind here) need qcow2 disks and no pflash NVRAM.
                features -= {Feature.SNAPSHOTS, Feature.SNAPSHOT_MEMORY, Feature.SNAPSHOT_DESCRIPTION}
        return frozenset(features)

    # -- host ----------------------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        """Facts from getInfo, getHostname, getVersion/getLibVersion and the capabilities."""
        conn = self._client.live()
        with self._client.errors("reading host facts", host=self.host):
            model, memory_mib, cpus, *_ = conn.getInfo()
            hostname = conn.getHostname()
            hypervisor = conn.getType()
            version = conn.getVersion()
            lib_version = conn.getLibVersion()
            # The test driver returns its cells' free KiB where the API promises bytes; leave it to the caller to
            # compute from the VMs rather than report a figure a thousand times too small.
            free = None if self.uri.driver == "test" else conn.getFreeMemory() // (1024 * 1024)
        return HostInfo(
            hostname=hostname,
            hypervisor=f"libvirt/{hypervisor}",
            hypervisor_version=_version(version),
            cpus=cpus,
            memory_mib=memory_mib,
            arch=self._host_caps.arch or model,
            extra=MappingProxyType({"libvirt_version": _version(lib_version), "driver": self.uri.driver}),
            free_memory_mib=free,
        )

    def networks(self) -> list[NetworkInfo]:
        """Every libvirt network."""
        conn = self._client.live()
        with self._client.errors("listing networks", host=self.host):
            return [
                NetworkInfo(name=net.name(), active=bool(net.isActive()), kind="libvirt-network", uuid=net.UUIDString())
                for net in conn.listAllNetworks()
            ]

    # -- inventory -----------------------------------------------------------------------------------------------
    def list_vms(self) -> list[VMInfo]:
        """Every domain in two bulk calls, details only for domains in the definition cache."""
        return self._inventory.list_vms()

    def lookup(self, ref: str) -> VMInfo:
        """Find a domain by UUID or name: identity and status (details only when cached)."""
        return self._inventory.lookup(ref)

    def info(self, uuid: str) -> VMInfo:
        """The domain with its details, read afresh."""
        return self._inventory.info(uuid)

    def status(self, uuid: str) -> VMStatus:
        """The domain's state, reason and managed-save image, without reading its XML."""
        return self._inventory.status(uuid)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        """Define the domain; on any failure, undefine it and delete the volumes made for it."""
        return self._lifecycle.create(spec, deadline)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Undefine with managed save, snapshot/checkpoint metadata and NVRAM; volumes polyvisor made if asked."""
        self._lifecycle.delete(uuid, storage=storage, deadline=deadline)

    def start(self, uuid: str, deadline: Deadline) -> None:
        """create(): boots, or restores the managed-save image, ending running."""
        self._lifecycle.start(uuid, deadline)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        """Ask the guest to shut down (ACPI, agent, or the default)."""
        self._lifecycle.shutdown(uuid, mode, deadline)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        """destroy(): power off at once."""
        self._lifecycle.stop(uuid, deadline)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        """Hard reset."""
        self._lifecycle.reset(uuid, deadline)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """Ask the guest to reboot."""
        self._lifecycle.reboot(uuid, deadline)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        """suspend()."""
        self._lifecycle.pause(uuid, deadline)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        """resume()."""
        self._lifecycle.resume(uuid, deadline)

    def save(self, uuid: str, deadline: Deadline) -> None:
        """managedSave(): memory to disk; start() restores it running."""
        self._lifecycle.save(uuid, deadline)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        """managedSaveRemove()."""
        self._lifecycle.discard_saved_state(uuid, deadline)

    # -- labels --------------------------------------------------------------------------------------------------
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

    # -- snapshots -----------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        """Take an internal snapshot (see :meth:`.snapshots.Snapshots.create`)."""
        return self._snapshots.create(uuid, name, memory=memory, description=description, deadline=deadline)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Every snapshot with its parent and whether it is current."""
        return self._snapshots.list(uuid)

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """Revert; a snapshot taken without memory ends stopped."""
        self._snapshots.revert(uuid, name, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        """Delete one snapshot (its children move up) or the whole subtree."""
        self._snapshots.delete(uuid, name, children=children, deadline=deadline)

    # -- devices -------------------------------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Create (or use) the disk and attach it at the next free target on its bus."""
        return self._devices.attach_disk(uuid, disk, live=live)

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target; the volume stays (delete(storage=True) removes owned ones)."""
        self._devices.detach_disk(uuid, target, live=live)

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; a MAC is generated when none is given."""
        return self._devices.attach_nic(uuid, nic, live=live)

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC."""
        self._devices.detach_nic(uuid, mac, live=live)

    # -- guest ---------------------------------------------------------------------------------------------------
    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """interfaceAddresses from each source in order; the first that answers with addresses wins."""
        return self._inventory.addresses(uuid, sources)

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        """Each source's addresses, or why it has none ("agent not connected", "no lease for 52:54:00:..")."""
        return self._addresses.answers(uuid, sources)

    def console_output(self, uuid: str) -> str:
        """The serial log file of a local domain."""
        return self._inventory.console_output(uuid)

    # -- sizes ---------------------------------------------------------------------------------------------------
    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        """Redefine a stopped domain's vCPUs/memory, or hot-plug vCPUs and move the balloon of a running one."""
        self._sizing.reconfigure(uuid, cpus=cpus, memory_mib=memory_mib, live=live, deadline=deadline)

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        """Grow a disk: the pool volume (stopped) or blockResize (running); never shrink."""
        self._sizing.resize_disk(uuid, target, size_mib, deadline)


def _version(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, release = divmod(rest, 1000)
    return f"{major}.{minor}.{release}"
