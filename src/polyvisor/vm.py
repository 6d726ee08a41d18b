"""VM handles: the verbs every backend shares, with the contract's rules applied once.

State checks, idempotence, waiting for the target state, ``ensure``, validation and capability gates live here,
for every backend; backends only provide primitives (:mod:`polyvisor.backend`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from polyvisor._locks import label_lock
from polyvisor.backend import Backend, Deadline, EventSink
from polyvisor.backend import validate_timeout as _check_timeout
from polyvisor.errors import (
    AlreadyExistsError,
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    ValidationError,
)
from polyvisor.guest import GuestOps
from polyvisor.model import (
    Capabilities,
    Feature,
    PowerState,
    ShutdownMode,
    Snapshot,
    SnapshotTree,
    VMInfo,
    VMStatus,
    validate_labels,
    validate_name,
    validate_text,
)
from polyvisor.transitions import SETTLED_STATES, VERBS, Verb
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["VM", "Waiting"]

log = logging.getLogger("polyvisor")

_FIRST_POLL = 0.02
_MAX_POLL = 1.0
_MAX_POLL_WITH_EVENTS = 2.0

Progress = Callable[[str], None]
_T = TypeVar("_T")


class VM(GuestOps):
    """A handle on one VM, identified by UUID. Every method asks the hypervisor afresh."""

    def __init__(self, connection: Connection, uuid: str, name: str) -> None:
        self.connection = connection
        self.uuid = uuid
        self._name = name  # as last seen, for messages only

    def __repr__(self) -> str:
        return f"<polyvisor.VM {self.uuid} (last seen as {self._name!r}) on {self.connection.host}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VM) and other.uuid == self.uuid and other.connection is self.connection

    def __hash__(self) -> int:
        return hash(self.uuid)

    @property
    def seen_name(self) -> str:
        """The name as this handle last read it, for messages; it may be stale: :meth:`name` asks afresh."""
        return self._name

    # -- facts -------------------------------------------------------------------------------------------------
    def _read(self, call: Callable[[Backend], _T]) -> _T:
        return self.connection.read(call)

    def name(self) -> str:
        """Return the VM's name now (names can change; the UUID does not)."""
        self._name = self._read(lambda b: b.lookup(self.uuid)).name
        return self._name

    def info(self) -> VMInfo:
        """Return fresh facts about the VM, details included."""
        info = self._read(lambda b: b.info(self.uuid))
        self._name = info.name
        return info

    def status(self) -> VMStatus:
        """Return the VM's status now."""
        return self._read(lambda b: b.status(self.uuid))

    def state(self) -> PowerState:
        """Return the VM's normalized power state now."""
        return self.status().state

    def capabilities(self) -> Capabilities:
        """The features this VM supports: the connection's, narrowed by what the backend finds for this VM."""
        base = self.connection.capabilities
        narrowed = self._read(lambda b: b.probe_vm_features(self.uuid))
        if narrowed is None:
            return base
        return Capabilities(base.features & narrowed, backend=base.backend)

    def labels(self) -> Mapping[str, str]:
        """Return the VM's labels now."""
        return self.info().labels

    # -- lifecycle -----------------------------------------------------------------------------------------------
    # Every verb returns or raises TimeoutError within ``timeout`` (+1 s); the deadline reaches the backend.
    # With ``wait=False`` a verb returns once the hypervisor accepted the request.
    def start(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power on (or restore saved memory); return once running."""
        return self._run("start", self._action("start"), timeout=timeout, wait=wait)

    def shutdown(
        self,
        *,
        timeout: float = SHUTDOWN_TIMEOUT,
        mode: ShutdownMode | str = ShutdownMode.DEFAULT,
        wait: bool = True,
    ) -> VMStatus:
        """Ask the guest to shut down and wait until it is stopped.

        On timeout, :class:`~polyvisor.errors.TimeoutError` is raised and the VM is left running: a graceful
        shutdown never turns into a power-off.
        """
        return self._run("shutdown", self._action("shutdown", self._shutdown_mode(mode)), timeout=timeout, wait=wait)

    def _shutdown_mode(self, mode: ShutdownMode | str) -> ShutdownMode:
        """Return the mode as a ShutdownMode, once the VM is known to support it."""
        mode = ShutdownMode(mode)
        if mode is ShutdownMode.ACPI:
            self.capabilities().require(Feature.SHUTDOWN_ACPI, host=self.connection.host, vm=self._name)
        elif mode is ShutdownMode.AGENT:
            self.capabilities().require(Feature.SHUTDOWN_AGENT, host=self.connection.host, vm=self._name)
        return mode

    def stop(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Power off at once. Refused on a saved VM (use :meth:`discard_saved_state`)."""
        return self._run("stop", self._action("stop"), timeout=timeout, wait=wait)

    def reset(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Hard reset a running VM."""
        return self._run("reset", self._action("reset"), timeout=timeout, wait=wait)

    def reboot(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Ask the guest to reboot."""
        return self._run("reboot", self._action("reboot"), timeout=timeout, wait=wait)

    def pause(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Freeze the VM in host memory."""
        return self._run("pause", self._action("pause"), timeout=timeout, wait=wait)

    def resume(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Unfreeze a paused VM."""
        return self._run("resume", self._action("resume"), timeout=timeout, wait=wait)

    def save(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Save memory to disk and stop; :meth:`start` restores it, running."""
        return self._run("save", self._action("save"), timeout=timeout, wait=wait)

    def discard_saved_state(self, *, timeout: float = DEFAULT_TIMEOUT, wait: bool = True) -> VMStatus:
        """Throw away saved memory, leaving the VM stopped."""
        return self._run("discard_saved_state", self._action("discard_saved_state"), timeout=timeout, wait=wait)

    def delete(self, *, storage: bool = False, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Remove the VM; its disks too with ``storage=True``. A saved VM needs ``force=True``.

        Deleting a VM that is already gone returns without acting.
        """
        _check_timeout(timeout)
        deadline = Deadline(timeout)
        try:
            status = self._settled(VERBS["delete"], deadline)
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
                vm=self._name,
            )
        if storage:
            self.capabilities().require(Feature.DELETE_STORAGE, host=self.connection.host, vm=self._name)
        self.connection.change(
            lambda b: b.delete(self.uuid, storage=storage, deadline=deadline), "deleting the VM", self._name
        )
        log.info("deleted VM %r (%s) on %s", self._name, self.uuid, self.connection.host)

    def wait_for(
        self,
        state: PowerState | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
    ) -> VMStatus:
        """Wait until the VM is in ``state``; raise :class:`~polyvisor.errors.TimeoutError` otherwise."""
        return self._wait_until(self._waiting_for(state, timeout, progress))

    def _waiting_for(self, state: PowerState | str, timeout: float, progress: Progress | None) -> Waiting:
        wanted = _power_state(state)
        _check_timeout(timeout)
        return Waiting(self, lambda s: s.state is wanted, Deadline(timeout), f"to become {wanted.value}", progress)

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
        target, deadline = self._ensure_begin(state, timeout)
        for _ in range(_ENSURE_STEPS):
            status = self._settled(None, deadline)
            step = self._ensure_step(status, target, force, progress)
            if step is None:
                return status
            self._run(step, self._action(step), deadline=deadline)
        raise self._unreached(target)

    def _ensure_begin(self, state: PowerState | str, timeout: float) -> tuple[PowerState, Deadline]:
        """Check an ``ensure`` call's target and timeout; return the target and the call's deadline (shared with
        the asyncio face)."""
        return _ensure_target(state, timeout), Deadline(timeout)

    def _ensure_step(self, status: VMStatus, target: PowerState, force: bool, progress: Progress | None) -> str | None:
        """Return the next verb of ``ensure``, None once at ``target``; raise when no verb leads there."""
        if status.state is target:
            return None
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
                vm=self._name,
            )
        if progress:
            progress(f"{step} ({status.state.value} -> {target.value})")
        return step

    def _unreached(self, target: PowerState) -> PolyvisorError:
        return PolyvisorError(f"could not reach {target.value}", host=self.connection.host, vm=self._name)

    # -- labels -------------------------------------------------------------------------------------------------
    def set_labels(self, labels: Mapping[str, str]) -> Mapping[str, str]:
        """Replace every label with ``labels``; return what the hypervisor now holds."""
        clean = validate_labels(labels)
        self.capabilities().require(Feature.LABELS, host=self.connection.host, vm=self._name)
        with label_lock(self.uuid):
            self.connection.change(lambda b: b.set_labels(self.uuid, clean), "setting labels", self._name)
        return self.labels()

    def update_labels(
        self, values: Mapping[str, str] | None = None, *, remove: Iterable[str] | str = ()
    ) -> Mapping[str, str]:
        """Add or change the labels in ``values`` and remove the keys in ``remove``; return the result.

        Concurrent updates through any threads and connections of this process, and other processes on this
        machine, never lose each other's keys (see the contract on labels).
        """
        keys = (remove,) if isinstance(remove, str) else tuple(remove)  # one key, not its characters
        changes = validate_labels(values or {})
        self.capabilities().require(Feature.LABELS, host=self.connection.host, vm=self._name)
        with label_lock(self.uuid):
            merged = dict(self.labels())
            merged.update(changes)
            for key in keys:
                merged.pop(key, None)
            clean = validate_labels(merged)
            self.connection.change(lambda b: b.set_labels(self.uuid, clean), "updating labels", self._name)
        return self.labels()

    # -- snapshots --------------------------------------------------------------------------------------------
    def snapshot(
        self, name: str, *, memory: bool = False, description: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> Snapshot:
        """Take a snapshot (a checkpoint on Hyper-V); with ``memory`` the running state is kept too."""
        validate_name(name, "snapshot name")
        validate_text(description, "description")
        _check_timeout(timeout)
        caps = self.capabilities()
        caps.require(Feature.SNAPSHOTS, host=self.connection.host, vm=self._name)
        if description:
            caps.require(Feature.SNAPSHOT_DESCRIPTION, host=self.connection.host, vm=self._name)
        if memory:
            caps.require(Feature.SNAPSHOT_MEMORY, host=self.connection.host, vm=self._name)
            state = self.state()
            if state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise InvalidStateError(
                    f"a memory snapshot needs a running or paused VM, and this one is {state.value}; "
                    "start it first or pass memory=False",
                    state=state,
                    accepted=(PowerState.RUNNING, PowerState.PAUSED),
                    host=self.connection.host,
                    vm=self._name,
                )
        if name in self.snapshots():
            raise AlreadyExistsError(
                f"a snapshot named {name!r} already exists; pick another name",
                host=self.connection.host,
                vm=self._name,
            )
        deadline = Deadline(timeout)
        return self.connection.change(
            lambda b: b.snapshot_create(self.uuid, name, memory=memory, description=description, deadline=deadline),
            f"taking snapshot {name!r}",
            self._name,
        )

    def snapshots(self) -> SnapshotTree:
        """Return the VM's snapshots as a tree."""
        self.capabilities().require(Feature.SNAPSHOTS, host=self.connection.host, vm=self._name)
        return SnapshotTree(tuple(self._read(lambda b: b.snapshot_list(self.uuid))))

    def revert(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> VMStatus:
        """Revert to the named snapshot: running or paused if it holds memory, otherwise stopped."""
        _check_timeout(timeout)
        deadline = Deadline(timeout)
        self._revert_request(name, deadline)
        return self._settled(None, deadline)

    def _revert_request(self, name: str, deadline: Deadline) -> None:
        self._require_snapshot(name)
        self.connection.change(
            lambda b: b.snapshot_revert(self.uuid, name, deadline), f"reverting to snapshot {name!r}", self._name
        )

    def delete_snapshot(self, name: str, *, children: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a snapshot; its children move to its parent unless ``children`` deletes them too."""
        _check_timeout(timeout)
        deadline = Deadline(timeout)
        self._require_snapshot(name)
        self.connection.change(
            lambda b: b.snapshot_delete(self.uuid, name, children=children, deadline=deadline),
            f"deleting snapshot {name!r}",
            self._name,
        )

    def _require_snapshot(self, name: str) -> None:
        if name not in self.snapshots():
            raise NotFoundError(
                f"no snapshot named {name!r}; list them with vm.snapshots()",
                host=self.connection.host,
                vm=self._name,
            )

    # -- the machinery -----------------------------------------------------------------------------------------
    def _action(self, verb_name: str, mode: ShutdownMode = ShutdownMode.DEFAULT) -> Primitive:
        """Return the backend primitive behind a verb, bound to this VM."""
        uuid = self.uuid
        if verb_name == "shutdown":
            return lambda b, d: b.shutdown(uuid, mode, d)
        return lambda b, d: getattr(b, verb_name)(uuid, d)

    def _run(
        self,
        verb_name: str,
        action: Primitive,
        *,
        timeout: float | None = None,
        deadline: Deadline | None = None,
        wait: bool = True,
    ) -> VMStatus:
        verb, deadline = self._verb_deadline(verb_name, timeout, deadline)
        status = self._settled(verb, deadline)
        finished = self._act(verb, action, deadline, status)
        if finished is not None:
            return finished
        if not wait:
            return self.status()
        return self._wait_until(self._verb_waiting(verb, action, deadline))

    # The phases of a verb, shared with the asyncio face (polyvisor.aio), which runs the blocking ones in threads
    # and waits on the event loop instead.
    def _verb_deadline(self, verb_name: str, timeout: float | None, deadline: Deadline | None) -> tuple[Verb, Deadline]:
        """Return the verb and its deadline, once the VM is known to support the verb."""
        verb = VERBS[verb_name]
        if verb.feature is not None:
            self.capabilities().require(verb.feature, host=self.connection.host, vm=self._name)
        if deadline is None:
            assert timeout is not None
            _check_timeout(timeout)
            deadline = Deadline(timeout)
        return verb, deadline

    def _act(self, verb: Verb, action: Primitive, deadline: Deadline, status: VMStatus) -> VMStatus | None:
        """Check ``status`` allows the verb and run its primitive; return a status when there is nothing to wait for."""
        if verb.target is not None and status.state is verb.target:
            log.debug("%s: %r is already %s", verb.name, self._name, status.state.value)
            return status
        if not verb.allows(status.state):
            raise InvalidStateError(
                _invalid_message(verb, status.state),
                state=status.state,
                accepted=sorted(verb.accepts & SETTLED_STATES),
                host=self.connection.host,
                vm=self._name,
            )
        log.info("%s %r on %s", verb.name, self._name, self.connection.host)
        try:
            self.connection.change(lambda b: action(b, deadline), f"running {verb.name}", self._name)
        except PolyvisorError as error:
            reached = self._reached(verb, error)
            if reached is None:
                raise
            return reached
        return None

    def _verb_waiting(self, verb: Verb, action: Primitive, deadline: Deadline) -> Waiting:
        """Return the wait for the state an accepted verb leads to (repeating a shutdown where the backend asks)."""
        target = verb.target or PowerState.RUNNING
        repeat = None
        repeat_every = self.connection.backend.shutdown_retry_interval if verb.name == "shutdown" else None
        if repeat_every is not None:
            doing = f"running {verb.name}"
            repeat = (repeat_every, lambda: self.connection.change(lambda b: action(b, deadline), doing, self._name))
        return Waiting(
            self, lambda s: s.state is target, deadline, f"to become {target.value} after {verb.name}", repeat=repeat
        )

    def _reached(self, verb: Verb, error: PolyvisorError) -> VMStatus | None:
        """Return the status if the VM is at the verb's target although the verb failed, else None.

        Another client may move the VM between the state check and the action (a start racing another start);
        the hypervisor then refuses, but the caller got what the verb promises. A timeout is never excused.
        """
        if verb.target is None or isinstance(error, TimeoutError):
            return None
        try:
            status = self.status()
        except PolyvisorError:
            return None  # the original error says more than this one
        if status.state is not verb.target:
            return None
        log.debug("%s: %r reached %s meanwhile (%s)", verb.name, self._name, status.state.value, error)
        return status

    def _settled(self, verb: Verb | None, deadline: Deadline) -> VMStatus:
        """Return the status, first waiting out a transitional state if the verb wants that."""
        status = self.status()
        waiting = self._settling(verb, status, deadline)
        return status if waiting is None else self._wait_until(waiting)

    def _settling(self, verb: Verb | None, status: VMStatus, deadline: Deadline) -> Waiting | None:
        """Return the wait for a transitional state to end, or None when the verb need not wait."""
        if status.state.is_transitional and (verb is None or verb.waits_out_transitions):
            return Waiting(self, lambda s: not s.state.is_transitional, deadline, "to finish its transition")
        return None

    def _wait(
        self,
        done: Callable[[VMStatus], bool],
        deadline: Deadline,
        what: str,
        progress: Progress | None = None,
        repeat: tuple[float, Callable[[], None]] | None = None,
    ) -> VMStatus:
        """Wait until ``done(status)`` or the deadline; events wake the wait early where the backend has them."""
        return self._wait_until(Waiting(self, done, deadline, what, progress, repeat))

    def _wait_until(self, waiting: Waiting) -> VMStatus:
        status = self.status()
        if waiting.done(status):
            return status  # most verbs return in their target state: no subscription needed
        sink = EventSink()
        cancel = self.connection.backend.subscribe(sink) if waiting.has_events else None
        try:
            while True:
                # Read again even on the first round: the state may have changed before the subscription began.
                status = self.status()
                if waiting.reached(status):
                    return status
                again = waiting.repeat_due()
                if again is not None:
                    again()
                # An event wakes us at once; the timeout is the polling fallback.
                if sink.take(waiting.next_delay()) is not None:
                    while sink.take(0) is not None:
                        pass
        finally:
            if cancel is not None:
                cancel()


class Waiting:
    """One wait for a VM's status, the policy the sync and asyncio faces share: when it is over, when to repeat
    the request, how long to sleep before polling again (an event ends the sleep early).
    """

    def __init__(
        self,
        vm: VM,
        done: Callable[[VMStatus], bool],
        deadline: Deadline,
        what: str,
        progress: Progress | None = None,
        repeat: tuple[float, Callable[[], None]] | None = None,
    ) -> None:
        self.done = done
        self.deadline = deadline
        self.what = what
        self.has_events = vm.connection.supports(Feature.EVENTS)
        self._vm = vm
        self._progress = progress
        self._repeat = repeat
        self._next_repeat = time.monotonic() + repeat[0] if repeat else None
        self._delay = _FIRST_POLL
        self._max_delay = _MAX_POLL_WITH_EVENTS if self.has_events else _MAX_POLL

    def reached(self, status: VMStatus) -> bool:
        """Return whether the wait is over; raise TimeoutError once the deadline passed without it."""
        if self.done(status):
            return True
        remaining = self.deadline.remaining()
        log.debug("waiting %s: %s, %.2f s left", self.what, status.state.value, remaining)
        if remaining <= 0:
            raise TimeoutError(
                f"timed out after {self.deadline.timeout:g}s waiting {self.what}; it is {status}. The VM was left "
                "as it is: wait longer, or use stop() to power it off",
                host=self._vm.connection.host,
                vm=self._vm.seen_name,
            )
        if self._progress:
            self._progress(f"waiting {self.what} (now {status.state.value})")
        return False

    def repeat_due(self) -> Callable[[], None] | None:
        """Return the request to send again now, if it is time to."""
        if self._repeat is None or self._next_repeat is None or time.monotonic() < self._next_repeat:
            return None
        log.debug("repeating the request while waiting %s", self.what)
        self._next_repeat = time.monotonic() + self._repeat[0]
        return self._repeat[1]

    def next_delay(self) -> float:
        """Seconds to sleep before polling again, growing each round and never past the deadline."""
        delay = min(self.deadline.remaining(), self._delay)
        self._delay = min(self._delay * 2, self._max_delay)
        return delay


Primitive = Callable[[Backend, Deadline], None]


_ENSURE_TARGETS = (PowerState.RUNNING, PowerState.STOPPED, PowerState.PAUSED, PowerState.SAVED)
_ENSURE_STEPS = 8  # every plan reaches its target in at most a few steps


def _ensure_target(state: PowerState | str, timeout: float) -> PowerState:
    """Return the state ``ensure`` was asked for, once it and the timeout are known to be valid."""
    _check_timeout(timeout)
    target = _power_state(state)
    if target not in _ENSURE_TARGETS:
        raise ValidationError(
            f"cannot ensure {target.value!r}; choose one of {', '.join(s.value for s in _ENSURE_TARGETS)}",
            field="state",
        )
    return target


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
