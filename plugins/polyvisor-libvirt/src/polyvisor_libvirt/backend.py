"""The libvirt backend: one :class:`LibvirtBackend` per open libvirt connection, a facade over its rooms.

Each room is a module with one class, named as in the Hyper-V backend, and each room method that implements a
:class:`~polyvisor.backend.Backend` method carries that method's name:

* :mod:`.client`: the connection (reopened after it drops), error mapping, lookups, deadline-bounded jobs;
* :mod:`.inventory`: host facts, bulk listings (a constant number of calls), one domain's facts,
  labels, per-VM features, console;
* :mod:`.lifecycle`: creation, deletion and the power verbs;
* :mod:`.snapshots`: internal snapshots;
* :mod:`.devices`: disks and NICs attached and detached; :mod:`.hostdevices`: the host's node devices, the TPM,
  nested virtualization and passthrough a spec asks for; :mod:`.storage`: pools and the volumes a domain owns;
  :mod:`.images`: clones of base images and cloud-init seeds;
* :mod:`.networks`: networks as values, made and deleted;
* :mod:`.pools`: the host's storage pools and volumes as values, made and deleted; :mod:`.transfers`: images
  uploaded and downloaded over sparse streams;
* :mod:`.sizing`: vCPUs, memory and disk sizes; :mod:`.addresses`: guest addresses, source by source;
  :mod:`.readiness`: cloud-init's result, read through the guest agent; :mod:`.metrics`: counters in one bulk call;
* the facade's parts kept apart: :mod:`.resources` (networks, pools, volumes, transfers), :mod:`.inguest` (the
  serial console, :mod:`.console`; commands and files, :mod:`.guest_agent`), :mod:`.screen` (:mod:`.display`);
* :mod:`.events`: event registrations, subscriptions and the definition cache they keep coherent;
* :mod:`.errors`, :mod:`.states`: libvirt's error codes and domain states in polyvisor's terms.

libvirt's own: :mod:`.domainxml` (domain XML, built and parsed), :mod:`.planner` (spec -> domain plan, host-free),
:mod:`.probe` and :mod:`.kvmcheck` (what the host can do), :mod:`.eventloop` (libvirt's event loop).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.backend_helpers import refuse_unknown_options
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    AddressAnswer,
    DiskInfo,
    DiskSpec,
    Feature,
    GuestAddress,
    HostDevice,
    HostInfo,
    NicSpec,
    ReadyAnswer,
    ShutdownMode,
    Snapshot,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.uri import URI
from polyvisor_libvirt.addresses import Addresses
from polyvisor_libvirt.bounded import JOB_GRACE, CallPool, Ordered, bounded
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.console import Consoles
from polyvisor_libvirt.devices import Devices
from polyvisor_libvirt.display import Display
from polyvisor_libvirt.guest_agent import GuestAgent
from polyvisor_libvirt.hostdevices import DEVICE_FEATURES, HostDevices, probe_device_caps
from polyvisor_libvirt.images import Images
from polyvisor_libvirt.inguest import InGuestPrimitives
from polyvisor_libvirt.inventory import Inventory
from polyvisor_libvirt.lifecycle import Lifecycle
from polyvisor_libvirt.metrics import Metrics
from polyvisor_libvirt.networks import Networks
from polyvisor_libvirt.pools import Pools
from polyvisor_libvirt.probe import SCREEN_FEATURES, probe_connection, read_host_caps
from polyvisor_libvirt.readiness import Readiness
from polyvisor_libvirt.resources import ResourcePrimitives
from polyvisor_libvirt.screen import ScreenPrimitives
from polyvisor_libvirt.sizing import Sizing
from polyvisor_libvirt.snapshots import Snapshots
from polyvisor_libvirt.storage import Storage
from polyvisor_libvirt.transfers import Transfers

__all__ = ["LibvirtBackend"]

_KNOWN_OPTIONS = frozenset({"readonly", "keepalive_interval", "keepalive_count"})


class LibvirtBackend(ResourcePrimitives, InGuestPrimitives, ScreenPrimitives, Backend):
    """A polyvisor backend over one libvirt connection (any libvirt URI)."""

    name: ClassVar[str] = "libvirt"
    # Everything some libvirt driver can do; probe_features() narrows it to this connection's driver and host.
    option_features: ClassVar[frozenset[Feature]] = (
        frozenset(
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
                Feature.USER_NETWORKING,
                Feature.NETWORK_ISOLATED,
                Feature.NETWORK_INTERNAL,
                Feature.NETWORK_NAT,
                Feature.NETWORK_ADDRESSES,
            }
        )
        | (SCREEN_FEATURES - {Feature.GRAPHICS, Feature.SCREENSHOT})
        | (DEVICE_FEATURES - {Feature.HOST_DEVICES})
    )
    address_sources: ClassVar[tuple[str, ...]] = ("agent", "lease", "arp")
    ready_sources: ClassVar[tuple[str, ...]] = ("cloud-init",)

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        refuse_unknown_options(credentials.options, _KNOWN_OPTIONS, backend=self.name)
        self.uri = uri
        self.host = uri.display_host
        self._calls = CallPool(f"polyvisor-libvirt-{self.host}")
        self._label_writes = Ordered()
        self._client = client = LibvirtClient(uri, credentials)
        try:
            host_caps = read_host_caps(client)
            device_caps = probe_device_caps(client, host_caps)
            self._features = probe_connection(client, host_caps) | device_caps.features
            self.feature_reasons = MappingProxyType(device_caps.reasons)
        except BaseException:
            self.close()  # no caller will ever close a backend that was not returned
            raise
        # The test driver keeps its VMs in memory, in this process (test:///default) or in libvirtd's
        # (test+unix:///default), and drops them when its last connection closes.
        self.ephemeral = uri.driver == "test"
        if uri.driver in ("qemu", "kvm"):
            # An ACPI press that arrives before the guest's ACPI daemon runs is lost: have the core repeat it.
            self.shutdown_retry_interval = 2.0
        storage = Storage(client)
        self._inventory = Inventory(client, host_caps)
        self._devices = Devices(client, storage)
        self._hostdevs = HostDevices(client, device_caps)
        self._lifecycle = Lifecycle(
            client,
            host_caps,
            inventory=self._inventory,
            storage=storage,
            devices=self._devices,
            images=Images(client),
            hostdevs=self._hostdevs,
            acpi_shutdown=self.shutdown_retry_interval is not None,
        )
        self._snapshots = Snapshots(client)
        self._sizing = Sizing(client)
        self._addresses = Addresses(client)
        self._readiness = Readiness(client)
        self._consoles, self._agent = Consoles(client), GuestAgent(client)
        self._display = Display(client)
        self._networks = Networks(client)
        self._pools = Pools(client)
        self._transfers = Transfers(client, self._pools, self._calls)
        self._metrics = Metrics(client)
        self._events = client.events  # the client registers it again on every connection it opens

    def close(self) -> None:
        """Deregister callbacks and close the connection; safe to call twice."""
        self._client.close()
        self._calls.close()

    # -- host and inventory --------------------------------------------------------------------------------------------
    @bounded("reading the host")
    def host_info(self) -> HostInfo:
        """Facts from getInfo, getHostname, getVersion/getLibVersion and the capabilities."""
        return self._inventory.host_info()

    @bounded("listing host devices")
    def host_devices(self) -> list[HostDevice]:
        """PCI and USB node devices, each with the domain that has it (see :mod:`.hostdevices`)."""
        return self._hostdevs.host_devices()

    @bounded("listing VMs")
    def list_vms(self) -> list[VMInfo]:
        """Every domain in two bulk calls, details only for domains in the definition cache."""
        return self._inventory.list_vms()

    @bounded("looking up the VM")
    def lookup(self, ref: str) -> VMInfo:
        """Find a domain by UUID or name: identity and status (details only when cached)."""
        return self._inventory.lookup(ref)

    @bounded("reading the VM")
    def info(self, uuid: str) -> VMInfo:
        """The domain with its details, read afresh."""
        return self._inventory.info(uuid)

    @bounded("reading the VM's state")
    def status(self, uuid: str) -> VMStatus:
        """The domain's state, reason and managed-save image, without reading its XML."""
        return self._inventory.status(uuid)

    def probe_features(self) -> frozenset[Feature]:
        """The features of this connection's driver (probed at connect)."""
        return self._features

    @bounded("reading the VM's definition")
    def probe_vm_features(self, uuid: str) -> frozenset[Feature]:
        """Narrow the connection's features to what this VM's definition allows."""
        return self._inventory.probe_vm_features(uuid, self._features)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        """Replace the labels element in the domain's metadata (live and persistent), after any earlier write of
        this VM's labels that its caller gave up on has ended (:class:`~.bounded.Ordered`)."""
        self._label_writes.run(
            self._calls, uuid, lambda: self._inventory.set_labels(uuid, labels), doing="writing labels", host=self.host
        )

    @bounded("reading the console")
    def console_output(self, uuid: str) -> str:
        """The serial log file of a local domain."""
        return self._inventory.console_output(uuid)

    @bounded("sampling VM counters")
    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        """Every domain's counters in one getAllDomainStats (some domains': domainListGetStats)."""
        return self._metrics.stats(uuids)

    # -- lifecycle -----------------------------------------------------------------------------------------------------
    @bounded("creating the VM")
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        """Define the domain; on any failure, undefine it and delete the volumes made for it."""
        return self._lifecycle.create(spec, deadline)

    @bounded("deleting the VM")
    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        """Undefine with managed save, snapshot/checkpoint metadata and NVRAM; volumes polyvisor made if asked."""
        self._lifecycle.delete(uuid, storage=storage, deadline=deadline)

    @bounded("starting the VM", grace=JOB_GRACE)
    def start(self, uuid: str, deadline: Deadline) -> None:
        """create(): boots, or restores the managed-save image, ending running."""
        self._lifecycle.start(uuid, deadline)

    @bounded("shutting the VM down")
    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        """Ask the guest to shut down (ACPI, agent, or the default)."""
        self._lifecycle.shutdown(uuid, mode, deadline)

    @bounded("powering the VM off")
    def stop(self, uuid: str, deadline: Deadline) -> None:
        """destroy(): power off at once."""
        self._lifecycle.stop(uuid, deadline)

    @bounded("resetting the VM")
    def reset(self, uuid: str, deadline: Deadline) -> None:
        """Hard reset."""
        self._lifecycle.reset(uuid, deadline)

    @bounded("rebooting the VM")
    def reboot(self, uuid: str, deadline: Deadline) -> None:
        """Ask the guest to reboot."""
        self._lifecycle.reboot(uuid, deadline)

    @bounded("pausing the VM")
    def pause(self, uuid: str, deadline: Deadline) -> None:
        """suspend()."""
        self._lifecycle.pause(uuid, deadline)

    @bounded("resuming the VM")
    def resume(self, uuid: str, deadline: Deadline) -> None:
        """resume()."""
        self._lifecycle.resume(uuid, deadline)

    @bounded("saving the VM", grace=JOB_GRACE)
    def save(self, uuid: str, deadline: Deadline) -> None:
        """managedSave(): memory to disk; start() restores it running."""
        self._lifecycle.save(uuid, deadline)

    @bounded("discarding the saved state")
    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        """managedSaveRemove()."""
        self._lifecycle.discard_saved_state(uuid, deadline)

    # -- snapshots -----------------------------------------------------------------------------------------------------
    @bounded("taking a snapshot", grace=JOB_GRACE)
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        """Take an internal snapshot (see :meth:`.snapshots.Snapshots.snapshot_create`)."""
        return self._snapshots.snapshot_create(uuid, name, memory=memory, description=description, deadline=deadline)

    @bounded("listing snapshots")
    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        """Every snapshot with its parent and whether it is current."""
        return self._snapshots.snapshot_list(uuid)

    @bounded("reverting to a snapshot", grace=JOB_GRACE)
    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        """Revert; a snapshot taken without memory ends stopped."""
        self._snapshots.snapshot_revert(uuid, name, deadline)

    @bounded("deleting a snapshot", grace=JOB_GRACE)
    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        """Delete one snapshot (its children move up) or the whole subtree."""
        self._snapshots.snapshot_delete(uuid, name, children=children, deadline=deadline)

    # -- devices and guest ---------------------------------------------------------------------------------------------
    @bounded("attaching a disk")
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        """Create (or use) the disk and attach it at the next free target on its bus."""
        return self._devices.attach_disk(uuid, disk, live=live)

    @bounded("detaching a disk")
    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        """Detach the disk with this target; the volume stays (delete(storage=True) removes owned ones)."""
        self._devices.detach_disk(uuid, target, live=live)

    @bounded("attaching a NIC")
    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        """Attach a NIC; a MAC is generated when none is given."""
        return self._devices.attach_nic(uuid, nic, live=live)

    @bounded("detaching a NIC")
    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        """Detach the NIC with this MAC."""
        self._devices.detach_nic(uuid, mac, live=live)

    @bounded("reading guest addresses")
    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """interfaceAddresses from each source in order; the first that answers with addresses wins."""
        return self._addresses.addresses(uuid, sources)

    @bounded("reading guest addresses")
    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        """Each source's addresses, or why it has none ("agent not connected", "no lease for 52:54:00:..")."""
        return self._addresses.address_answers(uuid, sources)

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        """Whether cloud-init finished, from its result file read through the guest agent."""
        return self._readiness.ready_answers(uuid, sources, deadline)

    # -- sizes ---------------------------------------------------------------------------------------------------------
    @bounded("reconfiguring the VM")
    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        """Redefine a stopped domain's vCPUs/memory, or hot-plug vCPUs and move the balloon of a running one."""
        self._sizing.reconfigure(uuid, cpus=cpus, memory_mib=memory_mib, live=live, deadline=deadline)

    @bounded("reading the disks")
    def disks(self, uuid: str) -> list[DiskInfo]:
        """The domain's hard disks and their virtual sizes."""
        return self._sizing.disks(uuid)

    @bounded("resizing a disk")
    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        """Grow a disk: the pool volume (stopped) or blockResize (running); never shrink."""
        self._sizing.resize_disk(uuid, target, size_mib, deadline)

    # -- events --------------------------------------------------------------------------------------------------------
    @bounded("subscribing to events")
    def subscribe(self, sink: EventSink) -> Subscription:
        """Lifecycle events (libvirt's, via the connection's one registration) until the returned callable runs."""
        self._client.live()
        if not self._events.available:
            return super().subscribe(sink)
        return self._events.subscribe(sink)
