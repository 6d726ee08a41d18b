"""The Hyper-V backend: the contract's primitives as Hyper-V cmdlets over PSRP or a WinRM shell.

Every VM is addressed by its Id (``Get-VM -Id <guid>`` piped into the verb), so a rename or a duplicate name can
never hit the wrong VM. Choices the contract leaves open:

* Labels and the description share the VM's ``Notes``: human text first, then a marker-delimited JSON block
  (:mod:`polyvisor_hyperv.notes`). A checkpoint captures Notes, so reverting also reverts labels.
* ``snapshot(memory=True)`` takes a Standard checkpoint (memory included); ``memory=False`` a Production one
  (ProductionOnly on a running VM, so Hyper-V never silently falls back to saving memory). The VM's CheckpointType
  is set for the call and put back afterwards. Checkpoints disabled on the VM raise UnsupportedError. Hyper-V
  checkpoints have no description, so a non-empty one raises UnsupportedError rather than being dropped.
* Reverting to a checkpoint that holds memory leaves Hyper-V in Saved; the backend starts the VM so that it ends
  running, as the snapshot recorded it.
* NICs get a MAC chosen here (Hyper-V's 00:15:5D prefix) when the spec gives none, because a dynamic MAC reads as
  zeros until the first start and could not be detached by MAC.
* ``delete(storage=True)`` removes the disk files of the VM's drives, of every checkpoint's drives and their
  parent chains, except files another VM still uses; files it cannot remove are named in a BackendError.
* Reboot is a guest shutdown followed by a start (Hyper-V has no guest-reboot cmdlet; ``Restart-VM`` resets).
* Shutdown is ``Stop-VM`` WITHOUT ``-Force``: the guest shuts down through its shutdown integration service, and
  a graceful shutdown never becomes a power-off. Microsoft's reference for Stop-VM
  (MicrosoftDocs/windows-powershell-docs, docset/winserver2022-ps/hyper-v/Stop-VM.md) says ``-Force`` "specifies
  that the shutdown of the virtual machine is to be forced ... If the virtual machine is locked, it is shut down
  immediately", and of ``Stop-VM -Force``: "Hyper-V gives the guest five minutes to save data, then forces a
  shutdown. This shutdown can result in loss of unsaved data." When the guest does not answer the shutdown
  integration service, Stop-VM asks whether to turn the VM off instead and ``-Force`` answers yes; without it the
  remote, non-interactive session cannot show the prompt and the cmdlet fails, which this backend reports as
  UnsupportedError (feature ``shutdown-agent``) with the VM left running. Stop is ``Stop-VM -TurnOff -Force``.
* Hyper-V's cmdlets block until the state is reached, so the primitives return when it is; each is bounded by its
  Deadline (and the ``command_timeout`` option): when it passes, the running pipeline is stopped on the host
  (PSRP) or the command terminated (WinRM shell), and TimeoutError is raised with the VM as Hyper-V has it.

* Events are native (:mod:`~polyvisor_hyperv.events`): one fixed watcher script per connection, a Get-VM loop
  every 500 ms on a session of its own, streams each change; subscriptions share it, and it stops on the host a
  moment after the last one is cancelled, or when the connection closes.

This class is a facade over rooms. Each room is a module with one class, named as in the libvirt backend, and each
room method that implements a :class:`~polyvisor.backend.Backend` method carries that method's name:

* :mod:`.client`: the transport pool, the pipeline runs every room makes, a VM's row and status;
* :mod:`.inventory`: host facts, VM listings with details, labels, per-VM features;
* :mod:`.lifecycle`: creation, deletion and the power verbs;
* :mod:`.snapshots`: checkpoints;
* :mod:`.devices`: drives and network adapters; :mod:`.storage`: disk files, where new ones go and which go with a
  deleted VM; :mod:`.images`: clones of base images and cloud-init seeds;
* :mod:`.sizing`: processors, memory and disk sizes; :mod:`.addresses`: guest addresses from KVP;
  :mod:`.readiness`: the guest's heartbeat;
* :mod:`.networks`: virtual switches as networks, made and deleted; :mod:`.nat`: NAT NICs on the host's WinNAT;
* :mod:`.pools`: the host's disk paths and image folders and the files in them, made and deleted;
  :mod:`.transfers`: images uploaded in byte[] chunks, hash-checked, renamed, and downloaded in chunks
  a fixed script reads;
* :mod:`.metrics`: every VM's counters (resource metering and the virtual processor counters);
* :mod:`.display`: VMConnect's details and screenshots (the WMI thumbnail, read by a fixed script);
* :mod:`.events`: the watcher pipeline feeding subscriptions;
* :mod:`.errors`, :mod:`.states`: PowerShell error records and VM states in polyvisor's terms.

Hyper-V's own: :mod:`.transport` (the interface, with :mod:`.psrp` and :mod:`.winrm_shell` implementing it),
:mod:`.commands` (cmdlet pipelines and fixed scripts as values), :mod:`.options` (connection options),
:mod:`.notes` (labels in Notes).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    AddressAnswer,
    DiskInfo,
    DiskSpec,
    Feature,
    GraphicsInfo,
    GuestAddress,
    HostDevice,
    HostInfo,
    NetworkInfo,
    NicSpec,
    ReadyAnswer,
    ShutdownMode,
    Snapshot,
    VMInfo,
    VMSpec,
    VMStatus,
)
from polyvisor.networks import NetworkSpec
from polyvisor.storage import LocalImage, Progress, StoragePool, Volume, VolumeFormat
from polyvisor.uri import URI
from polyvisor_hyperv.addresses import Addresses
from polyvisor_hyperv.client import HyperVClient
from polyvisor_hyperv.devices import Devices
from polyvisor_hyperv.display import Display
from polyvisor_hyperv.events import Events
from polyvisor_hyperv.hardware import Hardware
from polyvisor_hyperv.images import Images
from polyvisor_hyperv.inventory import Inventory
from polyvisor_hyperv.lifecycle import Lifecycle
from polyvisor_hyperv.metrics import Metrics
from polyvisor_hyperv.nat import NatNics
from polyvisor_hyperv.networks import Networks
from polyvisor_hyperv.options import ConnectionOptions, parse_options
from polyvisor_hyperv.pools import Pools
from polyvisor_hyperv.readiness import Readiness
from polyvisor_hyperv.sizing import Sizing
from polyvisor_hyperv.snapshots import Snapshots
from polyvisor_hyperv.storage import Storage
from polyvisor_hyperv.transfers import Transfers
from polyvisor_hyperv.transport import Transport, TransportPool

__all__ = ["HyperVBackend", "open_transport"]


def open_transport(options: ConnectionOptions) -> Transport:
    """Return the transport the options ask for (not yet connected); the client library loads only now."""
    if options.transport == "winrm":
        from polyvisor_hyperv.winrm_shell import WinRMShellTransport

        return WinRMShellTransport(options)
    from polyvisor_hyperv.psrp import PSRPTransport

    return PSRPTransport(options)


# What the transports import on first use, directly or through their client libraries (NTLM's and TLS's crypto).
CLIENT_MODULES = (
    "polyvisor_hyperv.psrp",
    "polyvisor_hyperv.winrm_shell",
    "polyvisor_hyperv.kerberos",  # error mapping for every Negotiate failure; pywinrm's Kerberos handler
    "requests",
    "urllib3.exceptions",
    "pypsrp.complex_objects",
    "pypsrp.exceptions",
    "pypsrp.powershell",
    "pypsrp.wsman",
    "winrm.exceptions",
    "winrm.protocol",
    "spnego.exceptions",
    "cryptography.hazmat.backends.openssl.backend",
)


def open_pool(options: ConnectionOptions, host: str) -> TransportPool:
    """Return up to ``options.sessions`` transports for threads sharing the connection (opened when needed)."""
    return TransportPool(lambda: open_transport(options), options.sessions, host)


class HyperVBackend(Backend):
    """One connection to a Hyper-V host."""

    name = "Hyper-V"
    # Method features (pause, save, snapshots, ...) follow from the methods overridden below.
    option_features = frozenset(
        {
            Feature.SHUTDOWN_AGENT,
            Feature.SNAPSHOT_MEMORY,
            Feature.DELETE_STORAGE,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
            Feature.UEFI,
            Feature.SECURE_BOOT,
            Feature.DISK_CLONE_LINKED,
            Feature.DISK_CLONE_COPY,
            Feature.CLOUD_INIT,
            Feature.DYNAMIC_MEMORY,
            Feature.MEMORY_BUFFER,
            # Runtime memory resize (Windows Server 2016 and later); the CPU count changes only while the VM is off,
            # so RECONFIGURE_LIVE_CPUS is not declared.
            Feature.RECONFIGURE_LIVE_MEMORY,
            # Private, Internal and External switches; no NAT switch type and no DHCP server, so neither
            # NETWORK_NAT nor NETWORK_ADDRESSES.
            Feature.NETWORK_ISOLATED,
            Feature.NETWORK_INTERNAL,
            Feature.NETWORK_EXTERNAL,
            # Enable-VMTPM (Generation 2), -ExposeVirtualizationExtensions, Discrete Device Assignment (PCI Express
            # only: Hyper-V passes no USB device through). See .hardware.
            Feature.TPM,
            Feature.NESTED_VIRTUALIZATION,
            Feature.PCI_PASSTHROUGH,
            # NAT NICs on WinNAT: a static address in the seed, static mappings from the host's external addresses,
            # none reachable from the host itself (see polyvisor_hyperv.nat); no user-networking (127.0.0.1).
            Feature.NAT_FORWARDING,
        }
    )
    address_sources = ("kvp",)
    ready_sources = ("heartbeat",)

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        self.uri = uri
        self.options: ConnectionOptions = parse_options(uri, credentials)
        self._client = client = HyperVClient(self.options, open_pool(self.options, uri.display_host), uri.display_host)
        storage = Storage(client)
        nat = NatNics(client)
        self._inventory = Inventory(client, nat)
        self._hardware = Hardware(client)
        self._lifecycle = Lifecycle(client, self._inventory, storage, Images(client), nat)
        self._snapshots = Snapshots(client, self._lifecycle)
        self._devices = Devices(client, storage)
        self._sizing = Sizing(client, self._devices)
        self._addresses = Addresses(client, self._devices)
        self._readiness = Readiness(client)
        self._display = Display(client)
        self._networks = Networks(client)
        self._pools = Pools(client)
        self._transfers = Transfers(client, self._pools)
        self._metrics = Metrics(client)
        # Native events: a watcher pipeline on a session of its own (see polyvisor_hyperv.events).
        self._events = Events(
            self.options, lambda: open_transport(self.options), self._inventory.list_vms, uri.display_host
        )

    @classmethod
    def import_dependencies(cls, uri: URI) -> None:
        """Import both transports and their client libraries now (they load lazily, on first use)."""
        for module in CLIENT_MODULES:
            importlib.import_module(module)

    def __repr__(self) -> str:
        return f"<HyperVBackend {self.options.endpoint} transport={self.options.transport}>"

    @property
    def host(self) -> str:
        """The host name as messages show it."""
        return self._client.host

    def close(self) -> None:
        self._events.close()
        self._client.transport.close()

    # -- host and inventory ---------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        return self._inventory.host_info()

    def networks(self) -> list[NetworkInfo]:
        return self._networks.networks()

    def host_devices(self) -> list[HostDevice]:
        """Get-VMHostAssignableDevice and every VM's Get-VMAssignableDevice (see :mod:`.hardware`)."""
        return self._hardware.host_devices()

    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        """New-VMSwitch (see :mod:`.networks`)."""
        return self._networks.create_network(spec, deadline)

    def delete_network(self, name: str, deadline: Deadline) -> None:
        """Remove-VMSwitch of a switch no VM is on."""
        self._networks.delete_network(name, deadline)

    def list_vms(self) -> list[VMInfo]:
        return self._inventory.list_vms()

    def lookup(self, ref: str) -> VMInfo:
        return self._inventory.lookup(ref)

    def info(self, uuid: str) -> VMInfo:
        return self._inventory.info(uuid)

    def status(self, uuid: str) -> VMStatus:
        return self._inventory.status(uuid)

    def probe_vm_features(self, uuid: str) -> frozenset[Feature] | None:
        return self._inventory.probe_vm_features(uuid)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        self._inventory.set_labels(uuid, labels)

    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        """Every VM's counters in at most four requests (see :mod:`.metrics`)."""
        return self._metrics.stats(uuids)

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        return self._lifecycle.create(spec, deadline)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        self._lifecycle.delete(uuid, storage=storage, deadline=deadline)

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.start(uuid, deadline)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self._lifecycle.shutdown(uuid, mode, deadline)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.stop(uuid, deadline)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.reboot(uuid, deadline)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.reset(uuid, deadline)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.pause(uuid, deadline)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.resume(uuid, deadline)

    def save(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.save(uuid, deadline)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        self._lifecycle.discard_saved_state(uuid, deadline)

    # -- snapshots ------------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        return self._snapshots.snapshot_create(uuid, name, memory=memory, description=description, deadline=deadline)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        return self._snapshots.snapshot_list(uuid)

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        self._snapshots.snapshot_revert(uuid, name, deadline)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        self._snapshots.snapshot_delete(uuid, name, children=children, deadline=deadline)

    # -- devices and guest ----------------------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        return self._devices.attach_disk(uuid, disk, live=live)

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        self._devices.detach_disk(uuid, target, live=live)

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        return self._devices.attach_nic(uuid, nic, live=live)

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        self._devices.detach_nic(uuid, mac, live=live)

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        return self._addresses.addresses(uuid, sources)

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        return self._addresses.address_answers(uuid, sources)

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        return self._readiness.ready_answers(uuid, sources, deadline)

    def graphics(self, uuid: str) -> GraphicsInfo:
        return self._display.graphics(uuid)

    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        """Hyper-V's thumbnail of the screen, as a PNG (see :mod:`.display`)."""
        return self._display.screenshot(uuid, deadline)

    # -- sizes ----------------------------------------------------------------------------------------------------
    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        self._sizing.reconfigure(uuid, cpus=cpus, memory_mib=memory_mib, live=live, deadline=deadline)

    def disks(self, uuid: str) -> list[DiskInfo]:
        return self._sizing.disks(uuid)

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        self._sizing.resize_disk(uuid, target, size_mib, deadline)

    # -- storage --------------------------------------------------------------------------------------------------
    def pools(self) -> list[StoragePool]:
        return self._pools.pools()

    def volumes(self, pool: str | None) -> list[Volume]:
        return self._pools.volumes(pool)

    def upload_image(
        self, image: LocalImage, pool: str | None, name: str, progress: Progress, deadline: Deadline
    ) -> Volume:
        return self._transfers.upload_image(image, pool, name, progress, deadline)

    def download_image(
        self, pool: str | None, name: str, destination: str, progress: Progress, deadline: Deadline
    ) -> int:
        """Chunks read by a fixed script, holes kept, hash-checked (see :mod:`.transfers`)."""
        return self._transfers.download_image(pool, name, destination, progress, deadline)

    def create_pool(self, name: str, path: str | None, deadline: Deadline) -> StoragePool:
        return self._pools.create_pool(name, path, deadline)

    def delete_pool(self, name: str, deadline: Deadline) -> None:
        self._pools.delete_pool(name, deadline)

    def create_volume(self, pool: str | None, name: str, size: int, fmt: VolumeFormat, deadline: Deadline) -> Volume:
        return self._pools.create_volume(pool, name, size, fmt, deadline)

    def resize_volume(self, pool: str | None, name: str, size: int, deadline: Deadline) -> Volume:
        return self._pools.resize_volume(pool, name, size, deadline)

    def delete_volume(self, pool: str | None, name: str, deadline: Deadline) -> None:
        self._pools.delete_volume(pool, name, deadline)

    # -- events ---------------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        return self._events.subscribe(sink)
