"""Connections and VM handles: the public API every backend shares.

The rules of the contract live here, once, for every backend: state checks, idempotence, waiting for the target
state, ``ensure``, validation and capability gates. Backends only provide primitives (:mod:`polyvisor.backend`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

from polyvisor.backend import Backend
from polyvisor.errors import (
    AlreadyExistsError,
    ConnectionError,
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    ValidationError,
)
from polyvisor.model import (
    Capabilities,
    DiskSpec,
    Event,
    Feature,
    Firmware,
    GuestAddress,
    HostInfo,
    NetworkInfo,
    NicSpec,
    PowerState,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMInfo,
    VMSpec,
    VMStatus,
    validate_labels,
    validate_name,
    validate_text,
)
from polyvisor.transitions import SETTLED_STATES, VERBS, Verb
from polyvisor.uri import URI

__all__ = ["DEFAULT_TIMEOUT", "SHUTDOWN_TIMEOUT", "VM", "Connection", "EventStream"]

log = logging.getLogger("polyvisor")

DEFAULT_TIMEOUT = 60.0
"""Seconds a blocking verb waits for its target state unless told otherwise."""
SHUTDOWN_TIMEOUT = 120.0
"""Seconds a graceful shutdown waits for the guest unless told otherwise."""

_FIRST_POLL = 0.02
_MAX_POLL = 1.0
_MAX_POLL_WITH_EVENTS = 2.0
ADDRESS_SOURCES = ("agent", "lease", "arp")

Progress = Callable[[str], None]


class Connection:
    """An open connection to one hypervisor host. Use as a context manager, or call :meth:`close`."""

    def __init__(self, backend: Backend, uri: URI) -> None:
        self._backend: Backend | None = backend
        self.uri = uri
        self._capabilities = backend.capabilities()
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else "open"
        return f"<polyvisor.Connection {self.uri.render()} {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The backend object (for backend-specific extras); raises once the connection is closed."""
        if self._backend is None:
            raise ConnectionError("the connection is closed; open a new one with polyvisor.connect()", host=self.host)
        return self._backend

    @property
    def host(self) -> str:
        """The host name as messages show it."""
        return self.uri.display_host

    @property
    def closed(self) -> bool:
        """Return whether :meth:`close` was called."""
        return self._backend is None

    def close(self) -> None:
        """Close the connection and every event stream still open on it; calling it again does nothing."""
        if self._backend is not None:
            for stream in list(self._streams):
                stream.close()
            backend, self._backend = self._backend, None
            backend.close()

    # -- capabilities and host --------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """The features this connection supports."""
        return self._capabilities

    def supports(self, feature: Feature) -> bool:
        """Return whether the connection declares ``feature``."""
        return self._capabilities.supports(feature)

    def host_info(self) -> HostInfo:
        """Return facts about the host."""
        return self.backend.host_info()

    def networks(self) -> list[NetworkInfo]:
        """Return the networks (libvirt) or virtual switches (Hyper-V) VMs can attach to."""
        self._capabilities.require(Feature.NETWORKS, host=self.host)
        return self.backend.networks()

    # -- inventory -------------------------------------------------------------------------------------------
    def vms(self) -> list[VM]:
        """Return every VM on the host (one bulk query, whatever their number)."""
        return [VM(self, info) for info in self.backend.list_vms()]

    def list(self) -> list[VMInfo]:
        """Return facts about every VM (one bulk query)."""
        return self.backend.list_vms()

    def vm(self, ref: str) -> VM:
        """Return the VM with this UUID or name; raise :class:`~polyvisor.errors.NotFoundError`."""
        if not isinstance(ref, str) or not ref:
            raise ValidationError("give a VM name or UUID", field="vm")
        return VM(self, self.backend.lookup(ref))

    def exists(self, ref: str) -> bool:
        """Return whether a VM with this UUID or name exists."""
        try:
            self.backend.lookup(ref)
        except NotFoundError:
            return False
        return True

    # -- creating --------------------------------------------------------------------------------------------
    def create(self, spec: VMSpec | Mapping[str, Any]) -> VM:
        """Create (define) a stopped VM from a spec; a failure leaves nothing behind."""
        if not isinstance(spec, VMSpec):
            spec = VMSpec.from_dict(spec)
        caps = self._capabilities
        caps.require(Feature.CREATE, host=self.host)
        if spec.kernel is not None:
            caps.require(Feature.DIRECT_KERNEL_BOOT, host=self.host)
        if spec.firmware is Firmware.UEFI:
            caps.require(Feature.UEFI, host=self.host)
        if spec.secure_boot:
            caps.require(Feature.SECURE_BOOT, host=self.host)
        if spec.accelerator is not None:
            caps.require(Feature.ACCELERATOR_CHOICE, host=self.host)
        if spec.labels:
            caps.require(Feature.LABELS, host=self.host)
        if self.exists(spec.name):
            raise AlreadyExistsError(
                f"a VM named {spec.name!r} already exists; pick another name or delete it first",
                host=self.host,
                vm=spec.name,
            )
        info = self.backend.create(spec)
        log.info("created VM %r (%s) on %s", info.name, info.uuid, self.host)
        return VM(self, info)

    # -- events ------------------------------------------------------------------------------------------------
    def watch(self) -> EventStream:
        """Return a stream of lifecycle events; iterate it, and close it (or use ``with``).

        Closing the connection closes the stream too.
        """
        stream = EventStream(self.backend)
        self._streams.add(stream)
        return stream


class EventStream:
    """An iterator of :class:`~polyvisor.model.Event`; a context manager that unsubscribes on exit.

    Iteration ends once the stream is closed, also when another thread closes it.
    """

    def __init__(self, backend: Backend) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        # The backend's sink; closing drops a wake-up marker into the queue, which the backend never sees.
        self._items = cast("queue.SimpleQueue[Event | object]", self._queue)
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = backend.subscribe(self._queue)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def get(self, timeout: float | None = None) -> Event | None:
        """Return the next event; None after ``timeout`` seconds without one, or once the stream is closed."""
        if self._cancel is None:
            return None
        try:
            item = self._items.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._items.put(_CLOSED)  # wake every other reader too
            return None
        assert isinstance(item, Event)
        return item

    def close(self) -> None:
        """Stop receiving events; a reader blocked in another thread returns."""
        with self._lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()
            self._items.put(_CLOSED)


_CLOSED = object()


class VM:
    """A handle on one VM, identified by UUID. Every call asks the hypervisor afresh."""

    def __init__(self, connection: Connection, info: VMInfo) -> None:
        self.connection = connection
        self.uuid = info.uuid
        self._info = info

    def __repr__(self) -> str:
        return f"<polyvisor.VM {self._info.name!r} {self.uuid} on {self.connection.host}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VM) and other.uuid == self.uuid and other.connection is self.connection

    def __hash__(self) -> int:
        return hash(self.uuid)

    # -- facts -------------------------------------------------------------------------------------------------
    @property
    def _backend(self) -> Backend:
        return self.connection.backend

    @property
    def name(self) -> str:
        """The name as last seen (names can change; the UUID does not)."""
        return self._info.name

    def info(self) -> VMInfo:
        """Return fresh facts about the VM."""
        self._info = self._backend.info(self.uuid)
        return self._info

    def status(self) -> VMStatus:
        """Return the VM's status now."""
        return self._backend.status(self.uuid)

    @property
    def state(self) -> PowerState:
        """The VM's normalized power state now."""
        return self.status().state

    def capabilities(self) -> Capabilities:
        """The features this VM supports."""
        return self._backend.vm_capabilities(self.uuid)

    @property
    def labels(self) -> Mapping[str, str]:
        """The VM's labels now."""
        return self.info().labels

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power on (or restore saved memory); return once running."""
        return self._run("start", self._backend.start, timeout=timeout, wait=wait)

    def shutdown(
        self,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        mode: ShutdownMode | str = ShutdownMode.DEFAULT,
        wait: bool = True,
    ) -> VMStatus:
        """Ask the guest to shut down and wait until it is stopped.

        On timeout, :class:`~polyvisor.errors.TimeoutError` is raised and the VM is left running.
        """
        mode = ShutdownMode(mode)
        if mode is ShutdownMode.ACPI:
            self.capabilities().require(Feature.SHUTDOWN_ACPI, host=self.connection.host, vm=self.name)
        elif mode is ShutdownMode.AGENT:
            self.capabilities().require(Feature.SHUTDOWN_AGENT, host=self.connection.host, vm=self.name)
        return self._run(
            "shutdown",
            lambda uuid: self._backend.shutdown(uuid, mode),
            timeout=timeout,
            wait=wait,
            repeat_every=self._backend.shutdown_retry_interval,
        )

    def stop(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Power off at once. Refused on a saved VM (use :meth:`discard_saved_state`)."""
        return self._run("stop", self._backend.stop, timeout=timeout)

    def reset(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Hard reset a running VM."""
        return self._run("reset", self._backend.reset, timeout=timeout)

    def reboot(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Ask the guest to reboot."""
        return self._run("reboot", self._backend.reboot, timeout=timeout)

    def pause(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Freeze the VM in host memory."""
        return self._run("pause", self._backend.pause, timeout=timeout)

    def resume(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Unfreeze a paused VM."""
        return self._run("resume", self._backend.resume, timeout=timeout)

    def save(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Save memory to disk and stop; :meth:`start` restores it."""
        return self._run("save", self._backend.save, timeout=timeout)

    def discard_saved_state(self, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Throw away saved memory, leaving the VM stopped."""
        return self._run("discard_saved_state", self._backend.discard_saved_state, timeout=timeout)

    def delete(self, *, storage: bool = False, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Remove the VM; its disks too with ``storage=True``. A saved VM needs ``force=True``.

        Deleting a VM that is already gone returns without acting.
        """
        try:
            status = self._settled(VERBS["delete"], timeout)
        except NotFoundError:
            return
        allowed = {PowerState.STOPPED, PowerState.SAVED} if force else {PowerState.STOPPED}
        if status.state not in allowed:
            hint = (
                "pass force=True to delete it with its saved memory, or start it and shut it down"
                if status.state is PowerState.SAVED
                else "stop or shut it down first"
            )
            raise InvalidStateError(
                f"cannot delete a VM that is {status.state.value}; {hint}",
                state=status.state,
                accepted=sorted(allowed),
                host=self.connection.host,
                vm=self.name,
            )
        if storage:
            self.capabilities().require(Feature.DELETE_STORAGE, host=self.connection.host, vm=self.name)
        self._backend.delete(self.uuid, storage=storage)
        log.info("deleted VM %r (%s) on %s", self.name, self.uuid, self.connection.host)

    def wait_for(
        self,
        state: PowerState | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Wait until the VM is in ``state``; raise :class:`~polyvisor.errors.TimeoutError` otherwise."""
        wanted = _power_state(state)
        return self._wait(lambda s: s.state is wanted, timeout, f"to become {wanted.value}", progress)

    def ensure(
        self,
        state: PowerState | str,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        force: bool = False,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Bring the VM to ``state`` by composing allowed verbs, doing nothing if it is already there.

        ``force`` allows lossy shortcuts: power off instead of a graceful shutdown, and discarding saved
        memory. Supported targets: running, stopped, paused, saved.
        """
        _check_timeout(timeout)
        target = _power_state(state)
        if target not in _ENSURE_TARGETS:
            raise ValidationError(
                f"cannot ensure {target.value!r}; choose one of {', '.join(s.value for s in _ENSURE_TARGETS)}",
                field="state",
            )
        deadline = time.monotonic() + timeout
        for _ in range(8):  # every plan reaches its target in at most a few steps
            remaining = max(deadline - time.monotonic(), 0.0)
            status = self._settled(None, remaining, requested=timeout)
            if status.state is target:
                return status
            step = _next_step(status.state, target, force)
            if step is None:
                raise InvalidStateError(
                    f"cannot bring a {status.state.value} VM to {target.value}"
                    + (
                        "; pass force=True to allow powering off or discarding saved state"
                        if not force and _next_step(status.state, target, True) is not None
                        else ""
                    ),
                    state=status.state,
                    accepted=(),
                    host=self.connection.host,
                    vm=self.name,
                )
            if progress:
                progress(f"{step} ({status.state.value} -> {target.value})")
            remaining = max(deadline - time.monotonic(), 0.0)
            getattr(self, step)(timeout=remaining)
        raise PolyvisorError(f"could not reach {target.value}", host=self.connection.host, vm=self.name)

    # -- labels -------------------------------------------------------------------------------------------------
    def set_labels(self, labels: Mapping[str, str]) -> Mapping[str, str]:
        """Replace every label with ``labels``; return what the hypervisor now holds."""
        clean = validate_labels(labels)
        self.capabilities().require(Feature.LABELS, host=self.connection.host, vm=self.name)
        self._backend.set_labels(self.uuid, clean)
        return self.labels

    def update_labels(self, set: Mapping[str, str] | None = None, remove: Iterable[str] = ()) -> Mapping[str, str]:
        """Add or change some labels and remove others (``remove``: keys, or one key); return the result."""
        if isinstance(remove, str):
            remove = (remove,)  # one key, not its characters
        merged = dict(self.labels)
        merged.update(set or {})
        for key in remove:
            merged.pop(key, None)
        return self.set_labels(merged)

    # -- snapshots --------------------------------------------------------------------------------------------
    def snapshot(self, name: str, *, memory: bool = False, description: str = "") -> Snapshot:
        """Take a snapshot (a checkpoint on Hyper-V); with ``memory`` the running state is kept too."""
        validate_name(name, "snapshot name")
        validate_text(description, "description")
        caps = self.capabilities()
        caps.require(Feature.SNAPSHOTS, host=self.connection.host, vm=self.name)
        if description:
            caps.require(Feature.SNAPSHOT_DESCRIPTION, host=self.connection.host, vm=self.name)
        if memory:
            caps.require(Feature.SNAPSHOT_MEMORY, host=self.connection.host, vm=self.name)
            state = self.state
            if state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise InvalidStateError(
                    f"a memory snapshot needs a running or paused VM, and this one is {state.value}; "
                    "start it first or pass memory=False",
                    state=state,
                    accepted=(PowerState.RUNNING, PowerState.PAUSED),
                    host=self.connection.host,
                    vm=self.name,
                )
        if name in self.snapshots():
            raise AlreadyExistsError(
                f"a snapshot named {name!r} already exists; pick another name",
                host=self.connection.host,
                vm=self.name,
            )
        return self._backend.snapshot_create(self.uuid, name, memory=memory, description=description)

    def snapshots(self) -> SnapshotTree:
        """Return the VM's snapshots as a tree."""
        self.capabilities().require(Feature.SNAPSHOTS, host=self.connection.host, vm=self.name)
        return SnapshotTree(tuple(self._backend.snapshot_list(self.uuid)))

    def revert(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Revert to the named snapshot: running or paused if it holds memory, otherwise stopped."""
        self._require_snapshot(name)
        self._backend.snapshot_revert(self.uuid, name)
        return self._settled(None, timeout)

    def delete_snapshot(self, name: str, *, children: bool = False) -> None:
        """Delete a snapshot; its children move to its parent unless ``children`` deletes them too."""
        self._require_snapshot(name)
        self._backend.snapshot_delete(self.uuid, name, children=children)

    def _require_snapshot(self, name: str) -> None:
        if name not in self.snapshots():
            raise NotFoundError(
                f"no snapshot named {name!r}; list them with vm.snapshots()",
                host=self.connection.host,
                vm=self.name,
            )

    # -- devices and guest -------------------------------------------------------------------------------------
    def attach_disk(self, disk: DiskSpec | Mapping[str, Any], *, live: bool | None = None) -> str:
        """Attach a disk (hot when the VM runs and ``live`` is not False); return its target name."""
        if not isinstance(disk, DiskSpec):
            disk = DiskSpec.from_dict(disk)
        live = self._live(live, Feature.DISK_ATTACH, Feature.DISK_HOTPLUG)
        return self._backend.attach_disk(self.uuid, disk, live=live)

    def detach_disk(self, target: str, *, live: bool | None = None) -> None:
        """Detach the disk with this target name (e.g. ``vdb``)."""
        live = self._live(live, Feature.DISK_ATTACH, Feature.DISK_HOTPLUG)
        self._backend.detach_disk(self.uuid, target, live=live)

    def attach_nic(self, nic: NicSpec | Mapping[str, Any], *, live: bool | None = None) -> str:
        """Attach a NIC; return its MAC address."""
        if not isinstance(nic, NicSpec):
            nic = NicSpec.from_dict(nic)
        live = self._live(live, Feature.NIC_ATTACH, Feature.NIC_HOTPLUG)
        return self._backend.attach_nic(self.uuid, nic, live=live)

    def detach_nic(self, mac: str, *, live: bool | None = None) -> None:
        """Detach the NIC with this MAC address."""
        live = self._live(live, Feature.NIC_ATTACH, Feature.NIC_HOTPLUG)
        self._backend.detach_nic(self.uuid, mac.lower(), live=live)

    def addresses(self, sources: Sequence[str] = ADDRESS_SOURCES) -> list[GuestAddress]:
        """Return the guest's addresses per interface, asking ``sources`` in order."""
        unknown = set(sources) - set(ADDRESS_SOURCES)
        if unknown:
            raise ValidationError(
                f"unknown address source(s) {sorted(unknown)}; use {list(ADDRESS_SOURCES)}",
                field="sources",
            )
        self.capabilities().require(Feature.GUEST_ADDRESSES, host=self.connection.host, vm=self.name)
        return self._backend.addresses(self.uuid, tuple(sources))

    def console_output(self) -> str:
        """Return what the guest wrote to its serial console so far."""
        self.capabilities().require(Feature.CONSOLE, host=self.connection.host, vm=self.name)
        return self._backend.console_output(self.uuid)

    def _live(self, live: bool | None, cold: Feature, hot: Feature) -> bool:
        caps = self.capabilities()
        caps.require(cold, host=self.connection.host, vm=self.name)
        running = self.state in (PowerState.RUNNING, PowerState.PAUSED)
        if live is None:
            live = running
        if live:
            if not running:
                raise InvalidStateError(
                    "live=True needs a running VM; pass live=False to change the stored definition",
                    state=self.state,
                    accepted=(PowerState.RUNNING, PowerState.PAUSED),
                    host=self.connection.host,
                    vm=self.name,
                )
            caps.require(hot, host=self.connection.host, vm=self.name)
        return live

    # -- the machinery -----------------------------------------------------------------------------------------
    def _run(
        self,
        verb_name: str,
        action: Callable[[str], None],
        *,
        timeout: float,
        wait: bool = True,
        repeat_every: float | None = None,
    ) -> VMStatus:
        verb = VERBS[verb_name]
        if verb.feature is not None:
            self.capabilities().require(verb.feature, host=self.connection.host, vm=self.name)
        _check_timeout(timeout)
        deadline = time.monotonic() + timeout
        status = self._settled(verb, timeout)
        if verb.target is not None and status.state is verb.target:
            log.debug("%s: %r is already %s", verb.name, self.name, status.state.value)
            return status
        if not verb.allows(status.state):
            raise InvalidStateError(
                _invalid_message(verb, status.state),
                state=status.state,
                accepted=sorted(verb.accepts & SETTLED_STATES),
                host=self.connection.host,
                vm=self.name,
            )
        log.info("%s %r on %s", verb.name, self.name, self.connection.host)
        try:
            action(self.uuid)
        except PolyvisorError as error:
            reached = self._reached(verb, error)
            if reached is None:
                raise
            return reached
        target = verb.target or PowerState.RUNNING
        if not wait:
            return self.status()
        remaining = max(deadline - time.monotonic(), 0.0)
        repeat = None
        if repeat_every is not None:
            repeat = (repeat_every, lambda: action(self.uuid))
        return self._wait(
            lambda s: s.state is target,
            remaining,
            f"to become {target.value} after {verb.name}",
            repeat=repeat,
            requested=timeout,
        )

    def _reached(self, verb: Verb, error: PolyvisorError) -> VMStatus | None:
        """Return the status if the VM is at the verb's target although the verb failed, else None.

        Another client may move the VM between the state check and the action (a start racing another start);
        the hypervisor then refuses, but the caller got what the verb promises.
        """
        if verb.target is None:
            return None
        try:
            status = self.status()
        except PolyvisorError:
            return None  # the original error says more than this one
        if status.state is not verb.target:
            return None
        log.debug("%s: %r reached %s meanwhile (%s)", verb.name, self.name, status.state.value, error)
        return status

    def _settled(self, verb: Verb | None, timeout: float, requested: float | None = None) -> VMStatus:
        """Return the status, first waiting out a transitional state if the verb wants that."""
        status = self.status()
        if status.state.is_transitional and (verb is None or verb.waits_out_transitions):
            status = self._wait(
                lambda s: not s.state.is_transitional, timeout, "to finish its transition", requested=requested
            )
        return status

    def _wait(
        self,
        done: Callable[[VMStatus], bool],
        timeout: float,
        what: str,
        progress: Progress | None = None,
        repeat: tuple[float, Callable[[], None]] | None = None,
        requested: float | None = None,
    ) -> VMStatus:
        """Wait until ``done(status)``; ``requested`` is the timeout the caller gave, for the message."""
        _check_timeout(timeout)
        deadline = time.monotonic() + timeout
        next_repeat = time.monotonic() + repeat[0] if repeat else None
        has_events = self.connection.supports(Feature.EVENTS)
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        cancel = self._backend.subscribe(events) if has_events else None
        delay = _FIRST_POLL
        try:
            while True:
                status = self.status()
                if done(status):
                    return status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waited = requested if requested is not None else timeout
                    raise TimeoutError(
                        f"timed out after {waited:g}s waiting {what}; it is {status}. The VM was left as "
                        "it is: wait longer, or use stop() to power it off",
                        host=self.connection.host,
                        vm=self.name,
                    )
                if progress:
                    progress(f"waiting {what} (now {status.state.value})")
                if repeat is not None and next_repeat is not None and time.monotonic() >= next_repeat:
                    log.debug("repeating the request while waiting %s", what)
                    repeat[1]()
                    next_repeat = time.monotonic() + repeat[0]
                try:
                    # An event wakes us at once; the timeout is the polling fallback.
                    events.get(timeout=min(remaining, delay))
                    while True:
                        events.get_nowait()
                except queue.Empty:
                    pass
                delay = min(delay * 2, _MAX_POLL_WITH_EVENTS if has_events else _MAX_POLL)
        finally:
            if cancel is not None:
                cancel()


_ENSURE_TARGETS = (PowerState.RUNNING, PowerState.STOPPED, PowerState.PAUSED, PowerState.SAVED)


def _next_step(current: PowerState, target: PowerState, force: bool) -> str | None:
    """Return the next verb on the way from ``current`` to ``target``, or None when there is none."""
    p = PowerState
    if target is p.RUNNING:
        return {p.STOPPED: "start", p.SAVED: "start", p.PAUSED: "resume"}.get(current) or (
            "stop" if force and current in (p.CRASHED, p.SUSPENDED, p.UNKNOWN) else None
        )
    if target is p.STOPPED:
        if current is p.RUNNING:
            return "stop" if force else "shutdown"
        if current is p.PAUSED:
            return "stop" if force else "resume"
        if current is p.SAVED:
            return "discard_saved_state" if force else "start"
        if current in (p.CRASHED, p.SUSPENDED, p.UNKNOWN):
            return "stop" if force else None
        return None
    if target is p.PAUSED:
        return {p.RUNNING: "pause", p.STOPPED: "start", p.SAVED: "start"}.get(current)
    if target is p.SAVED:
        return {p.RUNNING: "save", p.PAUSED: "save", p.STOPPED: "start"}.get(current)
    return None


def _invalid_message(verb: Verb, state: PowerState) -> str:
    accepted = ", ".join(sorted(s.value for s in verb.accepts & SETTLED_STATES))
    hint = {
        ("stop", PowerState.SAVED): "; it would lose the saved memory: use discard_saved_state()",
        ("start", PowerState.PAUSED): "; use resume()",
        ("shutdown", PowerState.PAUSED): "; resume() it first, or stop() to power off",
    }.get((verb.name, state), "")
    action = _VERB_PHRASES.get(verb.name, f"{verb.name} a VM")
    return f"cannot {action} that is {state.value} (accepts: {accepted}){hint}"


_VERB_PHRASES = {"discard_saved_state": "discard the saved state of a VM", "delete": "delete a VM"}


def _power_state(value: PowerState | str) -> PowerState:
    try:
        return PowerState(value)
    except ValueError:
        choices = ", ".join(state.value for state in PowerState)
        raise ValidationError(f"{value!r} is not a power state; use one of {choices}", field="state") from None


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValidationError(f"must be a number of seconds >= 0, got {timeout!r}", field="timeout")
