"""``memory://``: a complete backend whose hypervisor lives in this process's memory.

It is the smallest backend that keeps the whole contract, and passes the whole conformance kit: plugin authors can
read it as a reference, and tests use it where no real hypervisor is needed. Every connection to the same
``memory:///NAME`` in one process sees the same host (``memory:///`` is the host named ``default``), so labels
written through one connection are visible through another.

Guests obey at once, except for two behaviours a real guest can show, selected by the label
``polyvisor.test/guest`` (the hook the conformance kit uses for a guest that ignores shutdown):

* ``ignore-shutdown``: graceful shutdown and reboot requests are accepted and ignored;
* anything else: the guest behaves.

Files: a disk ``image`` must name a file the host has (:meth:`MemoryHost.add_file`); new disks become files
under ``/memory/<vm name>/`` and ``delete(storage=True)`` removes them.
"""

from __future__ import annotations

import datetime
import threading
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from polyvisor.backend import Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import AlreadyExistsError, NotFoundError, ValidationError
from polyvisor.model import (
    DiskSpec,
    Event,
    EventKind,
    Feature,
    HostInfo,
    NetworkInfo,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    VMDetails,
    VMInfo,
    VMSpec,
    VMStatus,
    normalize_uuid,
)
from polyvisor.uri import URI

__all__ = ["GUEST_BEHAVIOUR_LABEL", "MemoryBackend", "MemoryHost", "host_named"]

GUEST_BEHAVIOUR_LABEL = "polyvisor.test/guest"
"""The label that selects a test guest's behaviour (``ignore-shutdown``)."""

NETWORK = "default"

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
class _VM:
    uuid: str
    name: str
    cpus: int
    memory_mib: int
    description: str
    labels: dict[str, str]
    disks: dict[str, str]  # target -> file
    nics: list[str]  # MAC addresses
    state: PowerState = PowerState.STOPPED
    snapshots: dict[str, _Snapshot] = field(default_factory=dict)
    current_snapshot: str | None = None

    @property
    def ignores_shutdown(self) -> bool:
        return self.labels.get(GUEST_BEHAVIOUR_LABEL) == "ignore-shutdown"

    def info(self, *, details: bool) -> VMInfo:
        status = VMStatus(self.state, _RAW.get(self.state, self.state.value))
        facts = None
        if details:
            extra = {"disks": dict(self.disks), "nics": list(self.nics)}
            facts = VMDetails(self.cpus, self.memory_mib, dict(self.labels), self.description, extra)
        return VMInfo(self.uuid, self.name, status, self.state is PowerState.SAVED, facts)


class MemoryHost:
    """One in-memory hypervisor host; thread-safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.vms: dict[str, _VM] = {}
        self.files: set[str] = set()
        self.sinks: list[EventSink] = []
        self._macs = 0

    def add_file(self, path: str) -> None:
        """Place a file (an existing disk image) on the host."""
        with self.lock:
            self.files.add(path)

    def next_mac(self) -> str:
        with self.lock:
            self._macs += 1
            return f"52:54:00:{(self._macs >> 16) & 0xFF:02x}:{(self._macs >> 8) & 0xFF:02x}:{self._macs & 0xFF:02x}"

    def emit(self, kind: EventKind, vm: _VM) -> None:
        raw = _RAW.get(vm.state, vm.state.value)
        event = Event(kind, vm.uuid, vm.name, None if kind is EventKind.UNDEFINED else vm.state, raw)
        for sink in list(self.sinks):
            sink.emit(event)


_hosts: dict[str, MemoryHost] = {}
_hosts_lock = threading.Lock()


def host_named(name: str) -> MemoryHost:
    """Return the in-memory host of this name, made on first use."""
    with _hosts_lock:
        return _hosts.setdefault(name, MemoryHost(name))


class MemoryBackend(Backend):
    """A connection to an in-memory host."""

    name = "memory"
    option_features = frozenset(
        {
            Feature.DELETE_STORAGE,
            Feature.SNAPSHOT_MEMORY,
            Feature.SNAPSHOT_DESCRIPTION,
            Feature.DISK_HOTPLUG,
            Feature.NIC_HOTPLUG,
            Feature.READONLY_DISK,
        }
    )

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        unknown = set(credentials.options)
        if unknown:
            raise ValidationError(f"memory:// takes no options, got {sorted(unknown)}", field="options")
        self.uri = uri
        self.host = host_named(uri.path.strip("/") or "default")
        self._closed = False

    def close(self) -> None:
        self._closed = True

    # -- host and inventory ------------------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        total = 256 * 1024
        with self.host.lock:
            # The model's host holds a VM's memory from power-on to power-off; a saved VM's sits on disk.
            used = sum(vm.memory_mib for vm in self.host.vms.values() if vm.state.holds_memory)
        return HostInfo(self.host.name, "memory", "1.0", 64, total, "x86_64", free_memory_mib=max(total - used, 0))

    def networks(self) -> list[NetworkInfo]:
        return [NetworkInfo(NETWORK, True, "memory")]

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
            for disk in spec.disks:
                if disk.image is not None and disk.image not in self.host.files:
                    raise NotFoundError(
                        f"disk image {disk.image!r} does not exist on the host; give an existing file",
                        host=self.host.name,
                        vm=spec.name,
                    )
            for nic in spec.nics:
                if nic.network not in (None, NETWORK):
                    raise NotFoundError(f"no network named {nic.network!r}", host=self.host.name, vm=spec.name)
            deadline.check("creating the VM", host=self.host.name, vm=spec.name)
            vm = _VM(
                str(uuid_module.uuid4()),
                spec.name,
                spec.cpus,
                spec.memory_mib,
                spec.description,
                dict(spec.labels),
                {},
                [nic.mac or self.host.next_mac() for nic in spec.nics],
            )
            for disk in spec.disks:
                self._add_disk(vm, disk)
            self.host.vms[vm.uuid] = vm
            self.host.emit(EventKind.DEFINED, vm)
            return vm.info(details=True)

    def _add_disk(self, vm: _VM, disk: DiskSpec) -> str:
        target = f"vd{chr(ord('a') + len(vm.disks))}"
        path = disk.image or f"/memory/{vm.name}/{target}.qcow2"
        if disk.image is None:
            self.host.files.add(path)
        vm.disks[target] = path
        return target

    def _set(self, uuid: str, state: PowerState) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            vm.state = state
            self.host.emit(EventKind.STATE, vm)

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.RUNNING)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        if not self._vm(uuid).ignores_shutdown:
            self._set(uuid, PowerState.STOPPED)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.STOPPED)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        self._set(uuid, PowerState.RUNNING)

    def reboot(self, uuid: str, deadline: Deadline) -> None:
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
            if storage:
                in_use = {path for other in self.host.vms.values() for path in other.disks.values()}
                self.host.files -= set(vm.disks.values()) - in_use
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
            if disk.image is not None and disk.image not in self.host.files:
                raise NotFoundError(f"disk image {disk.image!r} does not exist on the host", host=self.host.name)
            return self._add_disk(vm, disk)

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
            if nic.network not in (None, NETWORK):
                raise NotFoundError(f"no network named {nic.network!r}", host=self.host.name)
            mac = nic.mac or self.host.next_mac()
            vm.nics.append(mac)
            return mac

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        with self.host.lock:
            vm = self._vm(uuid)
            if mac not in vm.nics:
                raise NotFoundError(f"the VM has no NIC with MAC {mac}", host=self.host.name)
            vm.nics.remove(mac)

    # -- events ------------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        with self.host.lock:
            self.host.sinks.append(sink)

        def cancel() -> None:
            with self.host.lock:
                if sink in self.host.sinks:
                    self.host.sinks.remove(sink)

        return cancel
