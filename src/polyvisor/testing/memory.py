"""``memory://``: a complete backend whose hypervisor lives in this process's memory.

It is the smallest backend that keeps the whole contract, and passes the whole conformance kit: plugin authors can
read it as a reference, and tests use it where no real hypervisor is needed. Every connection to the same
``memory:///NAME`` in one process sees the same host (``memory:///`` is the host named ``default``), so labels
written through one connection are visible through another.

Guests obey at once, except for behaviours a real guest can show, selected by labels (the hooks the conformance
kit uses):

* ``polyvisor.test/guest = "ignore-shutdown"``: graceful shutdown and reboot requests are accepted and ignored;
* ``polyvisor.test/address-delay = "2.5"``: the guest agent connects, and so reports addresses, 2.5 seconds (on
  the host's :attr:`MemoryHost.clock`) after the guest boots; without the label at once;
* ``polyvisor.test/address = "none"``: the guest agent never connects (a guest that never reports an address);
* ``polyvisor.test/ready-delay = "20"``: cloud-init finishes 20 seconds after the guest agent connects (default:
  as it connects);
* ``polyvisor.test/ready``: ``never`` (cloud-init never finishes), ``error`` (it finishes with an error), or
  ``no-agent`` (the VM has no guest agent channel, so the ``cloud-init`` source cannot answer; addresses still
  come, as from a DHCP lease).

A guest can also crash (:meth:`MemoryHost.crash`). The ways a host misbehaves (features it lacks, primitives that
fail, a host that is down or refuses the password) are options of the URI's query, documented in
:mod:`polyvisor.testing.faults`; every connection records the primitives it was asked for (``backend.calls``).

Addresses: the only source is the guest agent (``address_sources = ("agent",)``). A connected agent reports the
loopback interface (``127.0.0.1``, ``::1``) and, for each NIC, ``10.a.b.c`` (the MAC's last three bytes) and the
NIC's IPv6 link-local address; a guest without NICs therefore never has a usable address. Readiness: the one source
is ``cloud-init``, read through the modelled agent as libvirt reads it (``ready_sources = ("cloud-init",)``).

Files: a disk ``image`` attached as it is must name a file the host has (:meth:`MemoryHost.add_file`) or a file on
the local file system; new disks become files under ``/memory/<vm name>/`` and ``delete(storage=True)`` removes
them. A clone's base (``DiskSpec(image=..., clone=...)``) must be a readable file on the local file system: a
linked clone records its base and never opens it for writing; a copy clone reads the base's bytes into memory, so
it is independent of the base afterwards. A clone's virtual size is its base's: the ``size`` field of a qcow2
header, else the file's size (a raw image); ``size_mib`` may only grow it. Pools and volumes, uploads and
downloads: ``polyvisor.testing.memory_storage``. The guests' serial consoles (an echo), programs and files:
``polyvisor.testing.memory_guest``. A spec's ``cloud_init`` becomes a seed
ISO (:func:`~polyvisor.provisioning.build_seed_iso`) kept in the host's memory (:attr:`MemoryHost.seeds`) as the
VM's CD-ROM ``hdc``, shown in ``info().extra["cdroms"]``, readable with :meth:`MemoryBackend.seed_iso` (the
conformance kit's hook) and deleted with the VM, with or without its storage. Counters (``stats``):
:mod:`polyvisor.testing.memory_stats`.

Screens: a spec's ``graphics`` and ``video`` give the VM a console and a display adapter with libvirt's rules,
and a screenshot is the host's own drawing (``polyvisor.testing.memory_display``).

Devices: a spec's ``tpm`` and ``nested_virtualization`` are kept as given (the modelled guest sees a TPM 2.0 and the
virtualization extensions) and shown in ``info().extra`` as every backend shows them
(:func:`~polyvisor.model.device_facts`); the host's passable devices are ``polyvisor.testing.memory_devices``.

Reconfiguring: a stopped VM takes any CPU count up to the host's 64 and any memory (within ``dynamic_memory``'s
range when it has one). A running VM changes CPUs live up to the host's 64 and memory within ``dynamic_memory``'s
range, or, without dynamic memory, down to 16 MiB and up to the memory it booted with (a balloon); live changes are
kept in the definition too.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import stat
import struct
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polyvisor.backend import Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import AlreadyExistsError, NotFoundError, ValidationError
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    AddressAnswer,
    CloneMode,
    DiskInfo,
    DiskSpec,
    DynamicMemory,
    Event,
    EventKind,
    Feature,
    GuestAddress,
    GuestArchitecture,
    HostInfo,
    NicKind,
    NicSpec,
    PortForward,
    PowerState,
    ReadyAnswer,
    ShutdownMode,
    Snapshot,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
    device_facts,
    normalize_uuid,
)
from polyvisor.provisioning.nat import with_nat_addresses
from polyvisor.provisioning.nocloud import build_seed_iso
from polyvisor.testing.memory_devices import DEVICE_FEATURES, DevicePrimitives, MemoryDevices
from polyvisor.testing.memory_display import SCREEN_FEATURES, DisplayPrimitives, Screen, claim_port
from polyvisor.testing.memory_guest import GuestPrimitives, MemoryGuests
from polyvisor.testing.memory_nat import NatPlan, plan_nat
from polyvisor.testing.memory_networks import MemoryNetworks, NetworkPrimitives
from polyvisor.testing.memory_stats import note_state, sample_host
from polyvisor.testing.memory_storage import MemoryStorage, StoragePrimitives
from polyvisor.uri import URI

__all__ = [
    "ADDRESS_DELAY_LABEL",
    "ADDRESS_LABEL",
    "GUEST_BEHAVIOUR_LABEL",
    "READY_DELAY_LABEL",
    "READY_ERROR",
    "READY_LABEL",
    "MemoryBackend",
    "MemoryHost",
    "host_named",
    "virtual_size",
]

GUEST_BEHAVIOUR_LABEL = "polyvisor.test/guest"
"""The label that selects a test guest's behaviour (``ignore-shutdown``)."""
ADDRESS_DELAY_LABEL = "polyvisor.test/address-delay"
"""The label giving the seconds between a guest's boot and its agent reporting addresses (default 0)."""
ADDRESS_LABEL = "polyvisor.test/address"
"""The label that makes a guest never report an address (``none``)."""
READY_DELAY_LABEL = "polyvisor.test/ready-delay"
"""The label giving the seconds between a guest's agent connecting and cloud-init finishing (default 0)."""
READY_LABEL = "polyvisor.test/ready"
"""The label that makes cloud-init never finish (``never``), finish with an error (``error``), or the VM have no
guest agent channel (``no-agent``)."""
READY_ERROR = "modules-final: runcmd failed (a modelled error)"
"""The error a guest labelled ``polyvisor.test/ready = "error"`` reports."""

HOST_CPUS = 64
MIB = 1024 * 1024
_QCOW2_MAGIC = b"QFI\xfb"

_RAW = {
    PowerState.RUNNING: "running",
    PowerState.STOPPED: "shut off",
    PowerState.PAUSED: "paused",
    PowerState.SAVED: "shut off (saved)",
}


@dataclass
class _Snapshot:
    name: str
    parent: str | None
    created: datetime.datetime
    state: PowerState
    has_memory: bool
    description: str


@dataclass
class _Disk:
    path: str
    size_mib: int
    readonly: bool = False
    clone: CloneMode | None = None
    base: str | None = None
    """The base image a clone was made from (a linked clone reads through to it)."""
    content: bytes | None = None
    """A copy clone's own bytes, read from its base when it was made."""
    image_is_new: bool = False
    """Whether the disk's file was made for the VM (and so is removed with its storage)."""


@dataclass
class _VM:
    uuid: str
    name: str
    cpus: int
    memory_mib: int
    description: str
    labels: dict[str, str]
    disks: dict[str, _Disk]  # by target
    nics: list[str]  # MAC addresses
    forwards: list[tuple[str, PortForward]] = field(default_factory=list)
    """The port forwards of its user-mode NICs, with each NIC's MAC; held on the host while the VM runs."""
    nat: NatPlan = field(default_factory=NatPlan)
    """Its NAT NICs' addresses and the host's static mappings to them, held from creation to deletion."""
    nic_networks: dict[str, str] = field(default_factory=dict)
    """The network each NIC is on, by MAC."""
    dynamic_memory: DynamicMemory | None = None
    has_seed: bool = False
    """Whether a NoCloud seed ISO is attached as CD-ROM ``hdc`` (its bytes are in the host's ``seeds``)."""
    state: PowerState = PowerState.STOPPED
    booted_at: float = 0.0
    """When the guest last booted, on the host's clock."""
    boot_memory_mib: int = 0
    ran_before: float = 0.0
    """Seconds the guest ran since it booted, up to when it last stopped running (paused); for its counters."""
    running_since: float | None = None
    snapshots: dict[str, _Snapshot] = field(default_factory=dict)
    current_snapshot: str | None = None
    screen: Screen = field(default_factory=Screen)
    """Its graphical console and display adapter (``polyvisor.testing.memory_display``)."""
    hardware: dict[str, Any] = field(default_factory=dict)
    """Its TPM, nested virtualization and host devices, as ``info().extra`` shows them (``device_facts``)."""

    @property
    def ignores_shutdown(self) -> bool:
        return self.labels.get(GUEST_BEHAVIOUR_LABEL) == "ignore-shutdown"

    def disk_infos(self) -> list[DiskInfo]:
        return [DiskInfo(target, disk.path, disk.size_mib * MIB, disk.readonly) for target, disk in self.disks.items()]

    @property
    def seed_path(self) -> str:
        return f"/memory/{self.name}/cidata.iso"

    def info(self, *, details: bool) -> VMInfo:
        status = VMStatus(self.state, _RAW.get(self.state, self.state.value))
        facts = None
        if details:
            extra = {
                "disks": {target: disk.path for target, disk in self.disks.items()},
                "disk_sizes_mib": {target: disk.size_mib for target, disk in self.disks.items()},
                "disk_bases": {target: disk.base for target, disk in self.disks.items() if disk.base},
                "cdroms": {"hdc": self.seed_path} if self.has_seed else {},
                "nics": list(self.nics),
                "forwards": [forward.fact(mac) for mac, forward in self.forwards]
                + [held.forward.fact(held.mac, held.guest_address) for held in self.nat.forwards],
                **self.hardware,
            }
            if self.nat.addresses:
                extra["nat"] = [address.fact() for address in self.nat.addresses]
            facts = VMDetails(
                self.cpus, self.memory_mib, dict(self.labels), self.description, extra, self.dynamic_memory
            )
        return VMInfo(self.uuid, self.name, status, self.state is PowerState.SAVED, facts)

    def agent_answer(self, now: float) -> AddressAnswer:
        """What the guest agent says: the addresses of every interface, or why it cannot answer."""
        if self.state is not PowerState.RUNNING:
            return AddressAnswer("agent", (), f"agent not connected (the VM is {self.state.value})")
        if self.labels.get(ADDRESS_LABEL) == "none":
            return AddressAnswer("agent", (), "agent not connected")
        delay = _delay(self.labels.get(ADDRESS_DELAY_LABEL))
        if now - self.booted_at < delay:
            return AddressAnswer("agent", (), "agent not connected yet (the guest is booting)")
        found = [
            GuestAddress("lo", "00:00:00:00:00:00", "127.0.0.1", 8, "agent"),
            GuestAddress("lo", "00:00:00:00:00:00", "::1", 128, "agent"),
        ]
        for index, mac in enumerate(self.nics):
            octets = [int(part, 16) for part in mac.split(":")]
            ipv4 = f"10.{octets[3]}.{octets[4]}.{octets[5]}"
            eui64 = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
            ipv6 = str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui64))
            found.append(GuestAddress(f"eth{index}", mac, ipv4, 8, "agent"))
            found.append(GuestAddress(f"eth{index}", mac, ipv6, 64, "agent"))
        return AddressAnswer("agent", tuple(found), "")

    def cloud_init_answer(self, now: float) -> ReadyAnswer:
        """What cloud-init's result says, read through the guest agent: finished (with its errors), or why not."""
        behaviour = self.labels.get(READY_LABEL)
        if behaviour == "no-agent":
            return ReadyAnswer(
                "cloud-init",
                detail="agent not configured: the VM has no guest agent channel (org.qemu.guest_agent.0)",
                unavailable=True,
            )
        agent = self.agent_answer(now)
        if not agent.addresses:
            return ReadyAnswer("cloud-init", detail=agent.detail)
        connected = self.booted_at + _delay(self.labels.get(ADDRESS_DELAY_LABEL))
        if behaviour == "never" or now - connected < _delay(self.labels.get(READY_DELAY_LABEL)):
            return ReadyAnswer("cloud-init", detail="running: no /run/cloud-init/result.json yet")
        if behaviour == "error":
            return ReadyAnswer("cloud-init", True, "done, with 1 error", errors=(READY_ERROR,))
        return ReadyAnswer("cloud-init", True, "done")


def _delay(text: str | None) -> float:
    try:
        seconds = float(text) if text is not None else 0.0
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _free_target(disks: Mapping[str, _Disk]) -> str:
    return next(f"vd{letter}" for letter in "abcdefghijklmnopqrstuvwxyz" if f"vd{letter}" not in disks)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as image:
            return image.read()
    except OSError as error:
        raise ValidationError(f"base image {path!r} cannot be read: {error.strerror}", field="disk.image") from None


def virtual_size(path: str) -> int:
    """The virtual size in bytes of the image at ``path``: a qcow2 header's ``size`` field, else the file's size.

    Raise :class:`~polyvisor.errors.NotFoundError` naming the path if there is no such file, and
    :class:`~polyvisor.errors.ValidationError` if it cannot be read as a regular file.
    """
    try:
        with open(path, "rb") as image:
            facts = os.fstat(image.fileno())
            if not stat.S_ISREG(facts.st_mode):
                raise ValidationError(f"base image {path!r} is not a regular file", field="disk.image")
            header = image.read(32)
    except FileNotFoundError:
        raise NotFoundError(f"base image {path!r} does not exist; give an existing image file") from None
    except IsADirectoryError:
        raise ValidationError(f"base image {path!r} is a directory, not an image file", field="disk.image") from None
    except OSError as error:
        raise ValidationError(f"base image {path!r} cannot be read: {error.strerror}", field="disk.image") from None
    if len(header) >= 32 and header[:4] == _QCOW2_MAGIC:
        (size,) = struct.unpack(">Q", header[24:32])
        return int(size)
    return facts.st_size


class MemoryHost:
    """One in-memory hypervisor host; thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.vms: dict[str, _VM] = {}
        self.files: set[str] = set()
        self.sizes: dict[str, int] = {}
        self.seeds: dict[str, bytes] = {}
        """NoCloud seed ISOs attached to VMs, by path."""
        self.sinks: list[EventSink] = []
        self.clock: Callable[[], float] = time.monotonic
        """The host's clock (seconds); a test may replace it to drive delayed guest behaviour without sleeping."""
        self._macs = 0
        self.storage = MemoryStorage(name, self.disk_users, self.lock)
        """The host's pools and volumes (``polyvisor.testing.memory_storage``)."""
        self.networks = MemoryNetworks(name, self.network_users, self.lock)
        """The host's networks (``polyvisor.testing.memory_networks``)."""
        self.guests = MemoryGuests(name, self.lock, lambda: {vm.uuid: vm.name for vm in self.vms.values()})
        """The guests' consoles, programs and files (``polyvisor.testing.memory_guest``)."""
        self.devices = MemoryDevices(name, self.device_users, self.lock)
        """The host's devices VMs can be given (``polyvisor.testing.memory_devices``)."""

    def device_users(self) -> dict[str, str]:
        """The VM that has each host device given to one, by device name."""
        with self.lock:
            return {device: vm.name for vm in self.vms.values() for device in vm.hardware.get("host_devices", ())}

    def network_users(self, network: str) -> list[str]:
        """The names of the VMs with a NIC on ``network``."""
        with self.lock:
            return sorted(vm.name for vm in self.vms.values() if network in vm.nic_networks.values())

    def disk_users(self, path: str) -> list[str]:
        """The names of the VMs with a disk at ``path`` or cloned from it."""
        with self.lock:
            return sorted(
                vm.name for vm in self.vms.values() if any(path in (d.path, d.base) for d in vm.disks.values())
            )

    def plan_disk(self, vm_name: str, target: str, disk: DiskSpec) -> _Disk:
        """Plan one disk, checking its image or base; nothing is stored until the caller keeps it."""
        new_path = f"/memory/{vm_name}/{target}.qcow2"
        if disk.clone is not None:
            assert disk.image is not None  # DiskSpec refuses a clone without a base
            volume = self.storage.find(disk.image)
            base_mib = max(math.ceil((volume.capacity if volume else virtual_size(disk.image)) / MIB), 1)
            if disk.size_mib is not None and disk.size_mib < base_mib:
                raise ValidationError(
                    f"{disk.size_mib} MiB is smaller than the base image {disk.image!r} ({base_mib} MiB); "
                    "a clone can only grow its base",
                    field="disk.size_mib",
                )
            content = None
            if disk.clone is CloneMode.COPY:
                content = bytes(volume.data) if volume else _read(disk.image)
            size = disk.size_mib or base_mib
            return _Disk(new_path, size, clone=disk.clone, base=disk.image, content=content, image_is_new=True)
        if disk.image is not None:
            if disk.image in self.files:
                return _Disk(disk.image, self.sizes.get(disk.image, 1024), readonly=disk.readonly)
            if (volume := self.storage.find(disk.image)) is not None:
                return _Disk(disk.image, max(math.ceil(volume.capacity / MIB), 1), readonly=disk.readonly)
            if not Path(disk.image).is_file():
                raise NotFoundError(
                    f"disk image {disk.image!r} does not exist on the host; give an existing file",
                    host=self.name,
                    vm=vm_name,
                )
            size = max(math.ceil(virtual_size(disk.image) / MIB), 1)
            return _Disk(disk.image, size, readonly=disk.readonly)
        assert disk.size_mib is not None
        return _Disk(new_path, disk.size_mib, readonly=disk.readonly, image_is_new=True)

    def add_file(self, path: str, size_mib: int = 1024) -> None:
        """Place a file (an existing disk image of ``size_mib``) on the host."""
        with self.lock:
            self.files.add(path)
            self.sizes[path] = size_mib

    def next_mac(self) -> str:
        with self.lock:
            self._macs += 1
            return f"52:54:00:{(self._macs >> 16) & 0xFF:02x}:{(self._macs >> 8) & 0xFF:02x}:{self._macs & 0xFF:02x}"

    def crash(self, ref: str) -> None:
        """Crash the guest of the VM with this name or UUID, as a real one can: it stays crashed until stopped."""
        with self.lock:
            vm = next(vm for vm in self.vms.values() if ref in (vm.name, vm.uuid))
            vm.state = PowerState.CRASHED
            self.emit(EventKind.STATE, vm)

    def screen_vm(self, uuid: str) -> _VM:
        """The VM with this UUID (for its screen)."""
        with self.lock:
            try:
                return self.vms[uuid]
            except KeyError:
                raise NotFoundError(f"no VM with UUID {uuid!r}", host=self.name) from None

    def running_screens(self) -> list[_VM]:
        """The VMs whose QEMU-like process runs (they hold memory, and their console's port)."""
        with self.lock:
            return [vm for vm in self.vms.values() if vm.state.holds_memory]

    def emit(self, kind: EventKind, vm: _VM) -> None:
        raw = _RAW.get(vm.state, vm.state.value)
        event = Event(kind, vm.uuid, vm.name, None if kind is EventKind.UNDEFINED else vm.state, raw)
        self.guests.changed(vm.uuid, event.state)
        for sink in list(self.sinks):
            sink.emit(event)


_hosts: dict[str, MemoryHost] = {}
_hosts_lock = threading.Lock()


def host_named(name: str) -> MemoryHost:
    """Return the in-memory host of this name, made on first use."""
    with _hosts_lock:
        return _hosts.setdefault(name, MemoryHost(name))


def _claim_forwards(host: MemoryHost, vm: _VM) -> None:
    """A forward listens on the host while its VM runs: one held by another running VM refuses the start (and so
    does a graphics port another VM holds: :func:`~polyvisor.testing.memory_display.claim_port`)."""
    claim_port(vm, host.running_screens(), host.name)
    for _mac, forward in vm.forwards:
        for other in host.vms.values():
            if other is vm or not other.state.holds_memory:
                continue
            if any(held.key == forward.key for _, held in other.forwards):
                raise AlreadyExistsError(
                    f"host port {forward.host_address}:{forward.host_port}/{forward.protocol} is in use (VM "
                    f"{other.name!r} forwards it); stop that VM, or give this one another host port",
                    host=host.name,
                    vm=vm.name,
                )


OPTION_FEATURES = (
    frozenset(
        {
            Feature.SHUTDOWN_ACPI,
            Feature.DELETE_STORAGE,
            Feature.SNAPSHOT_MEMORY,
            Feature.SNAPSHOT_DESCRIPTION,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
            Feature.READONLY_DISK,
            Feature.DISK_CLONE_LINKED,
            Feature.DISK_CLONE_COPY,
            Feature.CLOUD_INIT,
            Feature.DYNAMIC_MEMORY,
            Feature.MEMORY_BUFFER,
            Feature.RECONFIGURE_LIVE_CPUS,
            Feature.RECONFIGURE_LIVE_MEMORY,
            Feature.USER_NETWORKING,
            Feature.NAT_FORWARDING,
            Feature.NETWORK_ISOLATED,
            Feature.NETWORK_INTERNAL,
            Feature.NETWORK_NAT,
            Feature.NETWORK_EXTERNAL,
            Feature.NETWORK_ADDRESSES,
        }
    )
    | SCREEN_FEATURES
    | DEVICE_FEATURES
)
"""The options of calls memory:// takes (its option_features; the URI's faults can take some away)."""

_ARCHITECTURES = (GuestArchitecture("x86_64"),)
"""What memory:// says it runs: its VMs run nothing, on no processor."""


class MemoryBackend(StoragePrimitives, NetworkPrimitives, GuestPrimitives, DisplayPrimitives, DevicePrimitives):
    """A connection to an in-memory host (its primitives also record their calls and obey the URI's faults)."""

    name = "memory"
    option_features = OPTION_FEATURES
    address_sources = ("agent",)
    ready_sources = ("cloud-init",)
    ephemeral = True  # every MemoryHost lives in this process's memory
    host: MemoryHost

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        unknown = set(credentials.options)
        if unknown:
            raise ValidationError(f"memory:// takes no options, got {sorted(unknown)}", field="options")
        self.uri = uri
        self.host = host_named(uri.path.strip("/") or "default")
        super().__init__(uri, credentials, host=self.host.name)
        self._closed = False

    def close(self) -> None:
        self._closed = True

    # -- host and inventory ------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        total = 256 * 1024
        with self.host.lock:
            # The model's host holds a VM's memory from power-on to power-off; a saved VM's sits on disk.
            used = sum(vm.memory_mib for vm in self.host.vms.values() if vm.state.holds_memory)
        facts = {"pid": os.getpid()}  # the host lives in this process
        free = max(total - used, 0)
        return HostInfo(self.host.name, "memory", "1.0", 64, total, "x86_64", facts, free, _ARCHITECTURES)

    def list_vms(self) -> list[VMInfo]:
        with self.host.lock:
            return [vm.info(details=True) for vm in self.host.vms.values()]

    def lookup(self, ref: str) -> VMInfo:
        return self._vm(ref).info(details=False)

    def info(self, uuid: str) -> VMInfo:
        return self._vm(uuid).info(details=True)

    def status(self, uuid: str) -> VMStatus:
        return self._vm(uuid).info(details=False).status

    def _vm(self, ref: str) -> _VM:
        with self.host.lock:
            key = normalize_uuid(ref)
            if key is not None and key in self.host.vms:
                return self.host.vms[key]
            for vm in self.host.vms.values():
                if vm.name == ref:
                    return vm
        raise NotFoundError(f"no VM named or with UUID {ref!r}; list them with conn.list()", host=self.host.name)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        with self.host.lock:
            if any(vm.name == spec.name for vm in self.host.vms.values()):
                raise AlreadyExistsError(f"a VM named {spec.name!r} already exists", host=self.host.name)
            if spec.cpus > HOST_CPUS:
                raise ValidationError(f"the host has {HOST_CPUS} CPUs; ask for at most that many", field="cpus")
            networks = [self.host.networks.resolve(nic.network, spec.name) for nic in spec.nics]
            # Everything that can fail happens before the VM exists: a failed create leaves nothing behind.
            disks: dict[str, _Disk] = {}
            for disk in spec.disks:
                target = _free_target(disks)
                disks[target] = self.host.plan_disk(spec.name, target, disk)
            self.host.devices.claim(spec.host_devices, spec.name)
            macs = [nic.mac or self.host.next_mac() for nic in spec.nics]
            nat = plan_nat(spec.nics, macs, self.host.vms.values(), host=self.host.name, vm=spec.name)
            seed = build_seed_iso(with_nat_addresses(spec.cloud_init, nat.addresses)) if spec.cloud_init else None
            deadline.check("creating the VM", host=self.host.name, vm=spec.name)
            vm = _VM(
                str(uuid_module.uuid4()),
                spec.name,
                spec.cpus,
                spec.memory_mib,
                spec.description,
                dict(spec.labels),
                disks,
                macs,
                [
                    (mac, f)
                    for nic, mac in zip(spec.nics, macs, strict=True)
                    if nic.kind is NicKind.USER
                    for f in nic.forwards
                ],
                nat,
                dynamic_memory=spec.dynamic_memory,
                has_seed=seed is not None,
                screen=Screen(spec.graphics, spec.video),
                hardware=device_facts(spec.tpm, spec.nested_virtualization, spec.host_devices),
            )
            vm.nic_networks = dict(zip(vm.nics, networks, strict=True))
            for made in disks.values():
                if made.image_is_new:
                    self.host.files.add(made.path)
            if seed is not None:
                self.host.seeds[vm.seed_path] = seed
            self.host.vms[vm.uuid] = vm
            self.host.emit(EventKind.DEFINED, vm)
            return vm.info(details=True)

    def _set(self, uuid: str, state: PowerState) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            note_state(vm, state, self.host.clock())
            vm.state = state
            self.host.emit(EventKind.STATE, vm)

    def start(self, uuid: str, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            _claim_forwards(self.host, vm)
            if vm.state is PowerState.STOPPED:  # a cold boot; a restored guest carries on where it was saved
                self._boot(vm)
            self._set(uuid, PowerState.RUNNING)

    def _boot(self, vm: _VM) -> None:
        vm.booted_at, vm.boot_memory_mib = self.host.clock(), vm.memory_mib
        vm.ran_before, vm.running_since = 0.0, None  # a new guest's counters start at zero

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        if not (self._vm(uuid).ignores_shutdown or self.faults.ignore_shutdown):
            self._set(uuid, PowerState.STOPPED)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.STOPPED)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        with self.host.lock:
            self._boot(self._vm(uuid))
            self._set(uuid, PowerState.RUNNING)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            if not (vm.ignores_shutdown or self.faults.ignore_shutdown):
                self._boot(vm)
            self._set(uuid, PowerState.RUNNING)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.PAUSED)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.RUNNING)

    def save(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.SAVED)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.STOPPED)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self.host.vms.pop(self._vm(uuid).uuid)
            if vm.has_seed:  # the seed CD-ROM belongs to the VM: it goes with it, storage or not
                self.host.seeds.pop(vm.seed_path, None)
            if storage:
                # Only files on the host: a clone's base is never removed, nor a disk another VM still uses.
                in_use = {disk.path for other in self.host.vms.values() for disk in other.disks.values()}
                self.host.files -= {disk.path for disk in vm.disks.values()} - in_use
            self.host.emit(EventKind.UNDEFINED, vm)

    # -- labels ------------------------------------------------------------------------------------------------
    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        with self.host.lock:
            self._vm(uuid).labels = dict(labels)

    # -- snapshots ---------------------------------------------------------------------------------------------
    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        with self.host.lock:
            vm = self._vm(uuid)
            state = vm.state if memory else PowerState.STOPPED
            snap = _Snapshot(name, vm.current_snapshot, datetime.datetime.now(datetime.UTC), state, memory, description)
            vm.snapshots[name] = snap
            vm.current_snapshot = name
            return self._snapshot(vm, snap)

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        with self.host.lock:
            vm = self._vm(uuid)
            return [self._snapshot(vm, snap) for snap in vm.snapshots.values()]

    @staticmethod
    def _snapshot(vm: _VM, snap: _Snapshot) -> Snapshot:
        return Snapshot(
            snap.name,
            snap.parent,
            snap.created,
            snap.state,
            snap.has_memory,
            snap.description,
            is_current=vm.current_snapshot == snap.name,
        )

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            vm.current_snapshot = name
            vm.state = vm.snapshots[name].state
            self.host.emit(EventKind.STATE, vm)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            doomed = vm.snapshots.pop(name)
            for snap in list(vm.snapshots.values()):
                if snap.parent == name:
                    if children:
                        self.snapshot_delete(uuid, snap.name, children=True, deadline=deadline)
                    else:
                        vm.snapshots[snap.name] = replace(snap, parent=doomed.parent)
            if vm.current_snapshot == name:
                vm.current_snapshot = doomed.parent

    # -- devices -----------------------------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        with self.host.lock:
            vm = self._vm(uuid)
            target = _free_target(vm.disks)
            made = self.host.plan_disk(vm.name, target, disk)
            if made.image_is_new:
                self.host.files.add(made.path)
            vm.disks[target] = made
            return target

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            if vm.disks.pop(target, None) is None:
                raise NotFoundError(
                    f"the VM has no disk {target!r}; its disks: {sorted(vm.disks)}", host=self.host.name
                )

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        with self.host.lock:
            vm = self._vm(uuid)
            network = self.host.networks.resolve(nic.network, vm.name)
            mac = nic.mac or self.host.next_mac()
            vm.nics.append(mac)
            vm.nic_networks[mac] = network
            return mac

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            if mac not in vm.nics:
                raise NotFoundError(f"the VM has no NIC with MAC {mac}", host=self.host.name)
            vm.nics.remove(mac)
            vm.nic_networks.pop(mac, None)

    def disks(self, uuid: str) -> list[DiskInfo]:
        with self.host.lock:
            return self._vm(uuid).disk_infos()

    def resize_disk(self, uuid: str, target: str, size_mib: int, deadline: Deadline) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            disk = vm.disks.get(target)
            if disk is None:
                raise NotFoundError(
                    f"the VM has no disk {target!r}; its disks: {sorted(vm.disks)}", host=self.host.name, vm=vm.name
                )
            if disk.readonly:
                raise ValidationError(f"disk {target!r} is read-only; it cannot be resized", field="target")
            if size_mib < disk.size_mib:
                raise ValidationError(
                    f"disk {target!r} is {disk.size_mib} MiB and disks only grow; give at least {disk.size_mib}",
                    field="size_mib",
                )
            deadline.check("resizing the disk", host=self.host.name, vm=vm.name)
            disk.size_mib = size_mib

    # -- CPUs and memory ---------------------------------------------------------------------------------------
    def reconfigure(
        self, uuid: str, *, cpus: int | None, memory_mib: int | None, live: bool, deadline: Deadline
    ) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            if cpus is not None and cpus > HOST_CPUS:
                raise ValidationError(f"{cpus} CPUs is above the host's {HOST_CPUS}", field="cpus")
            if memory_mib is not None:
                low, high, what = 16, 256 * 1024, "the host's memory"
                if vm.dynamic_memory is not None:
                    low, high = vm.dynamic_memory.minimum_mib, vm.dynamic_memory.maximum_mib
                    what = "dynamic memory's range"
                elif live:
                    high, what = vm.boot_memory_mib, "the memory it booted with (the balloon's maximum)"
                if not low <= memory_mib <= high:
                    raise ValidationError(f"{memory_mib} MiB is outside {what}, {low}-{high} MiB", field="memory_mib")
            deadline.check("reconfiguring the VM", host=self.host.name, vm=vm.name)
            if cpus is not None:
                vm.cpus = cpus
            if memory_mib is not None:
                vm.memory_mib = memory_mib

    # -- guest ---------------------------------------------------------------------------------------------------
    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        for answer in self.address_answers(uuid, sources):
            if answer.addresses:
                return list(answer.addresses)
        return []

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        with self.host.lock:
            vm = self._vm(uuid)
            now = self.host.clock()
            return [
                vm.agent_answer(now) if source == "agent" else AddressAnswer(source, (), "memory:// has no such source")
                for source in sources
            ]

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        with self.host.lock:
            vm = self._vm(uuid)
            now = self.host.clock()
            return [
                vm.cloud_init_answer(now)
                if source == "cloud-init"
                else ReadyAnswer(source, detail="memory:// has no such source", unavailable=True)
                for source in sources
            ]

    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        return sample_host(self.host, uuids, HOST_CPUS)

    def seed_iso(self, uuid: str) -> Callable[[], bytes | None]:
        """Return a reader of the VM's NoCloud seed CD-ROM: its bytes, or None once the seed is gone.

        The conformance kit's hook (``polyvisor_seed_reader``): the reader keeps working after the VM is deleted.
        """
        with self.host.lock:
            vm = self._vm(uuid)
            if not vm.has_seed:
                raise NotFoundError("the VM has no cloud-init seed", host=self.host.name, vm=vm.name)
            path, host = vm.seed_path, self.host

        def read() -> bytes | None:
            with host.lock:
                return host.seeds.get(path)

        return read

    # -- events ------------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        with self.host.lock:
            self.host.sinks.append(sink)

        def cancel() -> None:
            with self.host.lock:
                if sink in self.host.sinks:
                    self.host.sinks.remove(sink)

        return cancel
