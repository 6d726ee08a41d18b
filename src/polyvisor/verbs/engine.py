"""The lifecycle verbs as steps: deadline, check, act, settle, wait, ``ensure`` (no I/O).

Each function returns the :data:`~polyvisor.verbs.ops.Steps` of one call on a VM; :class:`polyvisor.VM` runs them
blocking, :class:`polyvisor.aio.AsyncVM` on the event loop. The engine reads only what a handle knows without
asking the hypervisor (its UUID, the name it last saw, its connection's host, clock and capabilities); every
question to the hypervisor is a request it yields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from polyvisor.backend import Backend, Deadline, validate_timeout
from polyvisor.errors import InvalidStateError, NotFoundError, PolyvisorError, TimeoutError
from polyvisor.model import Capabilities, Feature, PowerState, ShutdownMode, SnapshotTree, VMStatus
from polyvisor.transitions import SETTLED_STATES, VERBS, Verb
from polyvisor.verbs.deadlines import READ_GRACE
from polyvisor.verbs.ensure import ENSURE_STEPS, ensure_target, next_step, no_way, power_state, unreached
from polyvisor.verbs.ops import Change, Handle, Probe, Query, Read, Steps
from polyvisor.verbs.waiting import Progress, Waiting, wait

__all__ = [
    "Primitive",
    "act",
    "delete",
    "ensure",
    "invalid_message",
    "primitive",
    "require",
    "require_snapshot",
    "revert",
    "run_verb",
    "settled",
    "shutdown_mode",
    "snapshots",
    "verb_deadline",
    "wait_for",
]

log = logging.getLogger("polyvisor")

Primitive = Callable[[Backend, Deadline], None]
"""A backend primitive bound to one VM, taking the verb's deadline."""


def require(vm: Handle, feature: Feature, deadline: Deadline | None = None) -> Steps[Capabilities]:
    """Read the VM's capabilities and raise UnsupportedError unless they include ``feature``."""
    caps: Capabilities = yield Probe(deadline)
    caps.require(feature, host=vm.connection.host, vm=vm.seen_name)
    return caps


def primitive(vm: Handle, verb_name: str, mode: ShutdownMode = ShutdownMode.DEFAULT) -> Primitive:
    """Return the backend primitive behind a verb, bound to this VM."""
    uuid = vm.uuid
    if verb_name == "shutdown":
        return lambda b, d: b.shutdown(uuid, mode, d)
    return lambda b, d: getattr(b, verb_name)(uuid, d)


def shutdown_mode(vm: Handle, mode: ShutdownMode | str, deadline: Deadline | None = None) -> Steps[ShutdownMode]:
    """Return the mode as a ShutdownMode, once the VM is known to support it."""
    mode = ShutdownMode(mode)
    if mode is ShutdownMode.ACPI:
        yield from require(vm, Feature.SHUTDOWN_ACPI, deadline)
    elif mode is ShutdownMode.AGENT:
        yield from require(vm, Feature.SHUTDOWN_AGENT, deadline)
    return mode


def verb_deadline(vm: Handle, verb_name: str, timeout: float | None, deadline: Deadline | None) -> Steps[Deadline]:
    """Return the verb's deadline, once the VM is known to support the verb (an ``ensure`` passes its own)."""
    verb = VERBS[verb_name]
    if deadline is None:
        assert timeout is not None
        validate_timeout(timeout)
        deadline = Deadline(timeout, vm.connection.clock)
    if verb.feature is not None:
        yield from require(vm, verb.feature, deadline)
    return deadline


def run_verb(
    vm: Handle,
    verb_name: str,
    *,
    timeout: float | None = None,
    deadline: Deadline | None = None,
    wait_: bool = True,
    mode: ShutdownMode | str = ShutdownMode.DEFAULT,
) -> Steps[VMStatus]:
    """A lifecycle verb: wait out a transition, check the state, send the request, wait for the target state.

    With ``wait_`` False the call returns the status once the hypervisor accepted the request.
    """
    if deadline is None:
        assert timeout is not None
        validate_timeout(timeout)
        deadline = Deadline(timeout, vm.connection.clock)
    if verb_name == "shutdown":
        mode = yield from shutdown_mode(vm, mode, deadline)
    action = primitive(vm, verb_name, ShutdownMode(mode))
    verb = VERBS[verb_name]
    deadline = yield from verb_deadline(vm, verb_name, timeout, deadline)
    status = yield from settled(vm, verb, deadline)
    finished = yield from act(vm, verb, action, deadline, status)
    if finished is not None:
        return finished
    if not wait_:
        now: VMStatus = yield Read(deadline.extended(READ_GRACE))
        return now
    return (yield from wait(_after(vm, verb, action, deadline)))


def act(vm: Handle, verb: Verb, action: Primitive, deadline: Deadline, status: VMStatus) -> Steps[VMStatus | None]:
    """Check ``status`` allows the verb and run its primitive; return a status when there is nothing to wait for."""
    if verb.target is not None and status.state is verb.target:
        log.debug("%s: %r is already %s", verb.name, vm.seen_name, status.state.value)
        return status
    if not verb.allows(status.state):
        raise InvalidStateError(
            invalid_message(verb, status.state),
            state=status.state,
            accepted=sorted(verb.accepts & SETTLED_STATES),
            host=vm.connection.host,
            vm=vm.seen_name,
        )
    log.info("%s %r on %s", verb.name, vm.seen_name, vm.connection.host)
    try:
        yield Change(lambda b: action(b, deadline), f"running {verb.name}", deadline)
    except PolyvisorError as error:
        reached = yield from _reached(vm, verb, error, deadline)
        if reached is None:
            raise
        return reached
    return None


def _reached(vm: Handle, verb: Verb, error: PolyvisorError, deadline: Deadline) -> Steps[VMStatus | None]:
    """Return the status if the VM is at the verb's target although the verb failed, else None.

    Another client may move the VM between the state check and the action (a start racing another start);
    the hypervisor then refuses, but the caller got what the verb promises. A timeout is never excused.
    """
    if verb.target is None or isinstance(error, TimeoutError):
        return None
    try:
        status: VMStatus = yield Read(deadline.extended(READ_GRACE))
    except PolyvisorError:
        return None  # the original error says more than this one
    if status.state is not verb.target:
        return None
    log.debug("%s: %r reached %s meanwhile (%s)", verb.name, vm.seen_name, status.state.value, error)
    return status


def _after(vm: Handle, verb: Verb, action: Primitive, deadline: Deadline) -> Waiting:
    """Return the wait for the state an accepted verb leads to (repeating a shutdown where the backend asks)."""
    target = verb.target or PowerState.RUNNING
    repeat = None
    repeat_every = vm.connection.backend.shutdown_retry_interval if verb.name == "shutdown" else None
    if repeat_every is not None:
        repeat = (repeat_every, Change(lambda b: action(b, deadline), f"running {verb.name}", deadline))
    return Waiting(
        vm, lambda s: s.state is target, deadline, f"to become {target.value} after {verb.name}", repeat=repeat
    )


def settled(vm: Handle, verb: Verb | None, deadline: Deadline) -> Steps[VMStatus]:
    """Return the status, first waiting out a transitional state if the verb wants that (``ensure``: always)."""
    status: VMStatus = yield Read(deadline.extended(READ_GRACE))
    if status.state.is_transitional and (verb is None or verb.waits_out_transitions):
        return (
            yield from wait(Waiting(vm, lambda s: not s.state.is_transitional, deadline, "to finish its transition"))
        )
    return status


def wait_for(vm: Handle, state: PowerState | str, timeout: float, progress: Progress | None) -> Steps[VMStatus]:
    """Wait until the VM is in ``state``; raise TimeoutError otherwise."""
    wanted = power_state(state)
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    return (yield from wait(Waiting(vm, lambda s: s.state is wanted, deadline, f"to become {wanted.value}", progress)))


def ensure(
    vm: Handle, state: PowerState | str, timeout: float, force: bool, progress: Progress | None
) -> Steps[VMStatus]:
    """Bring the VM to ``state`` by composing allowed verbs, doing nothing if it is already there."""
    target = ensure_target(state, timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    for _ in range(ENSURE_STEPS):
        status = yield from settled(vm, None, deadline)
        if status.state is target:
            return status
        step = next_step(status.state, target, force)
        if step is None:
            raise no_way(status.state, target, force, host=vm.connection.host, vm=vm.seen_name)
        if progress:
            progress(f"{step} ({status.state.value} -> {target.value})")
        yield from run_verb(vm, step, deadline=deadline)
    raise unreached(target, host=vm.connection.host, vm=vm.seen_name)


def delete(vm: Handle, storage: bool, force: bool, timeout: float) -> Steps[None]:
    """Remove the VM (its disks too with ``storage``); a saved VM needs ``force``; a VM already gone is no error."""
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    try:
        status = yield from settled(vm, VERBS["delete"], deadline)
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
            host=vm.connection.host,
            vm=vm.seen_name,
        )
    if storage:
        yield from require(vm, Feature.DELETE_STORAGE, deadline)
    uuid = vm.uuid
    yield Change(lambda b: b.delete(uuid, storage=storage, deadline=deadline), "deleting the VM", deadline)
    log.info("deleted VM %r (%s) on %s", vm.seen_name, uuid, vm.connection.host)


def snapshots(vm: Handle, deadline: Deadline | None = None) -> Steps[SnapshotTree]:
    """Return the VM's snapshots as a tree."""
    yield from require(vm, Feature.SNAPSHOTS, deadline)
    uuid = vm.uuid
    listed = yield Query(lambda b: b.snapshot_list(uuid), deadline)
    return SnapshotTree(tuple(listed))


def require_snapshot(vm: Handle, name: str, deadline: Deadline | None = None) -> Steps[None]:
    """Raise NotFoundError unless the VM has a snapshot called ``name``."""
    tree = yield from snapshots(vm, deadline)
    if name not in tree:
        raise NotFoundError(
            f"no snapshot named {name!r}; list them with vm.snapshots()",
            host=vm.connection.host,
            vm=vm.seen_name,
        )


def revert(vm: Handle, name: str, timeout: float) -> Steps[VMStatus]:
    """Revert to the named snapshot and return the status once it settled."""
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    yield from require_snapshot(vm, name, deadline)
    uuid = vm.uuid
    yield Change(lambda b: b.snapshot_revert(uuid, name, deadline), f"reverting to snapshot {name!r}", deadline)
    return (yield from settled(vm, None, deadline))


def invalid_message(verb: Verb, state: PowerState) -> str:
    """The message of a verb refused in ``state``: what it accepts, and what to do instead."""
    accepted = ", ".join(sorted(s.value for s in verb.accepts & SETTLED_STATES))
    hint = {
        ("stop", PowerState.SAVED): "; it would lose the saved memory: use discard_saved_state()",
        ("start", PowerState.PAUSED): "; use resume()",
        ("shutdown", PowerState.PAUSED): "; resume() it first, or stop() to power off",
    }.get((verb.name, state), "")
    action = _VERB_PHRASES.get(verb.name, f"{verb.name} a VM")
    return f"cannot {action} that is {state.value} (accepts: {accepted}){hint}"


_VERB_PHRASES = {"discard_saved_state": "discard the saved state of a VM", "delete": "delete a VM"}
