"""An in-memory hypervisor and its backend, registered through ``Plugins`` so the CLI runs in-process against it.

State lives in :class:`FakeHypervisor`, shared by every connection to it, so successive CLI invocations in one
test see each other's changes (unlike libvirt's ``test:///default``, which is fresh on every open).
"""

from __future__ import annotations

import logging
import threading
import uuid as uuid_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from polyvisor import Plugins
from polyvisor.backend import OPTION_FEATURES, Backend, Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import AuthenticationError, BackendError, ConnectionError, NotFoundError
from polyvisor.hookspecs import hookimpl
from polyvisor.model import (
    DiskSpec,
    Event,
    EventKind,
    Feature,
    GuestAddress,
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
)
from polyvisor.plugins import BackendRegistry
from polyvisor.uri import URI

log = logging.getLogger("fakebackend")

DRIVER = "fake"
URI_TEXT = "fake:///lab"


@dataclass
class _Machine:
    uuid: str
    name: str
    state: PowerState = PowerState.STOPPED
    cpus: int = 1
    memory_mib: int = 512
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    has_saved: bool = False
    snapshots: list[Snapshot] = field(default_factory=list)


class FakeHypervisor:
    """The host: its VMs, the features it declares, and knobs to make it misbehave the way real ones do."""

    def __init__(self, features: frozenset[Feature] = frozenset(Feature), password: str | None = None) -> None:
        self.features = features
        self.password = password
        self.reachable = True
        self.guest_ignores_shutdown = False
        self.leaky = False
        """When set, the backend behaves carelessly: it logs the raw URI and puts the password in its errors."""
        self.backend_error: str | None = None
        self.failing: set[str] = set()
        """Names of primitives that fail with a BackendError, as a broken hypervisor's would."""
        """When set, listing VMs fails with this native message."""
        self.lock = threading.Lock()
        self.machines: dict[str, _Machine] = {}
        self.sinks: list[EventSink] = []
        self.subscribed = threading.Event()
        self.add("web", state=PowerState.RUNNING, cpus=2, memory_mib=2048, labels={"tier": "front"})

    def add(self, name: str, **fields: Any) -> _Machine:
        """Define a VM directly on the host."""
        machine = _Machine(uuid=str(uuid_module.uuid4()), name=name, **fields)
        self.machines[machine.uuid] = machine
        return machine

    def by_name(self, name: str) -> _Machine:
        """Return the VM with this name."""
        return next(m for m in self.machines.values() if m.name == name)

    def set_state(self, machine: _Machine, state: PowerState, detail: str = "") -> None:
        """Change a VM's state and tell every subscriber, as a native event source would."""
        machine.state = state
        for sink in list(self.sinks):
            sink.emit(Event(EventKind.STATE, machine.uuid, machine.name, state, detail))

    def after_subscribe(self, action: Callable[[], None]) -> threading.Thread:
        """Run ``action`` in a thread as soon as someone next subscribes to events (join the returned thread)."""
        self.subscribed.clear()

        def run() -> None:
            if self.subscribed.wait(10):
                action()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def plugin(self) -> object:
        """Return a plugin object registering this host's backend under the ``fake`` driver."""
        hv = self

        class FakePlugin:
            @hookimpl
            def polyvisor_register_backends(self, registry: BackendRegistry) -> None:
                registry.add(DRIVER, lambda uri, credentials: FakeBackend(hv, uri, credentials), description="fake")

        return FakePlugin()

    def plugins(self) -> Plugins:
        """Return isolated plugins knowing only this host."""
        plugins = Plugins(load_entry_points=False)
        plugins.register(self.plugin(), name="fake-plugin", distribution="polyvisor-fake")
        return plugins


class FakeBackend(Backend):
    """A backend over :class:`FakeHypervisor`; transitions complete at once.

    The class implements every feature; the host's probe narrows that to :attr:`FakeHypervisor.features`, so a
    test can take features away.
    """

    name = "fake"
    option_features = frozenset(
        feature for feature, base in OPTION_FEATURES.items() if base is not Feature.RECONFIGURE
    )  # the fake changes no CPUs or memory

    def __init__(self, hv: FakeHypervisor, uri: URI, credentials: Credentials) -> None:
        self.hv = hv
        self.uri = uri
        if hv.leaky:
            log.debug("opening %s with %s", uri.raw, credentials.password.reveal() if credentials.password else None)
        if not hv.reachable:
            raise ConnectionError(f"cannot reach {uri.display_host}: connection refused; is the host up?")
        if hv.password is not None:
            given = credentials.password.reveal() if credentials.password else None
            if given != hv.password:
                leak = f" (password {given!r})" if hv.leaky else ""
                raise AuthenticationError(
                    f"{uri.display_host} refused the credentials of {credentials.username!r}{leak}; check the password"
                )

    def probe_features(self) -> frozenset[Feature]:
        return self.hv.features

    def close(self) -> None:
        pass

    def host_info(self) -> HostInfo:
        return HostInfo("fakehost", "fake", "1.0", 4, 8192, "x86_64", extra={"rack": "r1"})

    def networks(self) -> list[NetworkInfo]:
        return [NetworkInfo("default", True, "nat", "00000000-0000-0000-0000-000000000001")]

    def _info(self, m: _Machine) -> VMInfo:
        status = VMStatus(m.state, m.state.value.upper(), None)
        extra = {"volumes": ("/var/lib/fake/a.img", "/var/lib/fake/b.img"), "generation": 2}
        details = VMDetails(m.cpus, m.memory_mib, dict(m.labels), m.description, extra)
        return VMInfo(m.uuid, m.name, status, m.has_saved, details)

    def list_vms(self) -> list[VMInfo]:
        if self.hv.backend_error:
            native = self.hv.backend_error
            raise BackendError(f"listing VMs failed: {native}", code=42, native_message=native)
        with self.hv.lock:
            return [self._info(m) for m in self.hv.machines.values()]

    def _machine(self, ref: str) -> _Machine:
        with self.hv.lock:
            for m in self.hv.machines.values():
                if ref in (m.uuid, m.name):
                    return m
        raise NotFoundError(f"no VM named or with UUID {ref!r}; list them with 'polyvisor list'", host="fakehost")

    def lookup(self, ref: str) -> VMInfo:
        return self._info(self._machine(ref))

    def info(self, uuid: str) -> VMInfo:
        return self._info(self._machine(uuid))

    def create(self, spec: VMSpec, deadline: Deadline) -> VMInfo:
        m = self.hv.add(
            spec.name,
            cpus=spec.cpus,
            memory_mib=spec.memory_mib,
            labels=dict(spec.labels),
            description=spec.description,
        )
        return self._info(m)

    def start(self, uuid: str, deadline: Deadline) -> None:
        m = self._machine(uuid)
        m.has_saved = False
        self.hv.set_state(m, PowerState.RUNNING)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        if not self.hv.guest_ignores_shutdown:
            self.hv.set_state(self._machine(uuid), PowerState.STOPPED)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self.hv.set_state(self._machine(uuid), PowerState.STOPPED)

    def reset(self, uuid: str, deadline: Deadline) -> None:
        self.hv.set_state(self._machine(uuid), PowerState.RUNNING, "reset")

    def reboot(self, uuid: str, deadline: Deadline) -> None:
        self.hv.set_state(self._machine(uuid), PowerState.RUNNING, "rebooted")

    def pause(self, uuid: str, deadline: Deadline) -> None:
        self.hv.set_state(self._machine(uuid), PowerState.PAUSED)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        self.hv.set_state(self._machine(uuid), PowerState.RUNNING)

    def save(self, uuid: str, deadline: Deadline) -> None:
        if "save" in self.hv.failing:
            raise BackendError("saving failed: disk full", code=28, native_message="No space left on device")
        m = self._machine(uuid)
        m.has_saved = True
        self.hv.set_state(m, PowerState.SAVED)

    def discard_saved_state(self, uuid: str, deadline: Deadline) -> None:
        m = self._machine(uuid)
        m.has_saved = False
        self.hv.set_state(m, PowerState.STOPPED)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        with self.hv.lock:
            self.hv.machines.pop(uuid, None)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        self._machine(uuid).labels = dict(labels)

    def snapshot_create(self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline) -> Snapshot:
        m = self._machine(uuid)
        current = next((s for s in m.snapshots if s.is_current), None)
        m.snapshots = [replace(s, is_current=False) for s in m.snapshots]
        created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        snap = Snapshot(name, current.name if current else None, created, m.state, memory, description, True)
        m.snapshots.append(snap)
        return snap

    def snapshot_list(self, uuid: str) -> list[Snapshot]:
        return list(self._machine(uuid).snapshots)

    def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
        m = self._machine(uuid)
        m.snapshots = [replace(s, is_current=s.name == name) for s in m.snapshots]
        self.hv.set_state(m, next(s for s in m.snapshots if s.name == name).state)

    def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
        m = self._machine(uuid)
        gone = next(s for s in m.snapshots if s.name == name)
        doomed = {name}
        if children:
            changed = True
            while changed:
                before = len(doomed)
                doomed |= {s.name for s in m.snapshots if s.parent in doomed}
                changed = len(doomed) != before
        kept = [s for s in m.snapshots if s.name not in doomed]
        m.snapshots = [replace(s, parent=gone.parent) if s.parent == name else s for s in kept]

    def attach_disk(self, uuid: str, disk: DiskSpec, *, live: bool) -> str:
        self._machine(uuid)
        return "vdb"

    def detach_disk(self, uuid: str, target: str, *, live: bool) -> None:
        self._machine(uuid)

    def attach_nic(self, uuid: str, nic: NicSpec, *, live: bool) -> str:
        self._machine(uuid)
        return nic.mac or "52:54:00:00:00:01"

    def detach_nic(self, uuid: str, mac: str, *, live: bool) -> None:
        self._machine(uuid)

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        self._machine(uuid)
        return []

    def console_output(self, uuid: str) -> str:
        return f"{self._machine(uuid).name} login: "

    def subscribe(self, sink: EventSink) -> Subscription:
        self.hv.sinks.append(sink)
        self.hv.subscribed.set()

        def cancel() -> None:
            if sink in self.hv.sinks:
                self.hv.sinks.remove(sink)

        return cancel


def make_uri(password: str | None = None, user: str | None = None) -> str:
    """Return the fake host's URI, with credentials embedded when given."""
    if user is None:
        return URI_TEXT
    auth = user + (f":{password}" if password else "")
    return f"fake://{auth}@lab/"
