"""Inside the guest, as steps: opening its serial console, running a command, copying a file (no I/O).

Each call checks its whole request before it acts: the arguments (:mod:`polyvisor.guestexec`), the feature, the
credentials against the channel (``guest-login``: required where the channel logs in, refused where it cannot use
them) and the VM's state (a console needs a running or paused VM, a command or a file a running one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from polyvisor.backend import ConsoleChannel, Deadline, validate_timeout
from polyvisor.errors import InvalidStateError, UnsupportedError, ValidationError
from polyvisor.guestexec import (
    MAX_FILE_BYTES,
    ExecResult,
    GuestCredentials,
    validate_argv,
    validate_guest_path,
    validate_input,
)
from polyvisor.model import Capabilities, Feature, PowerState, VMStatus
from polyvisor.verbs.deadlines import READ_GRACE
from polyvisor.verbs.engine import require
from polyvisor.verbs.ops import Change, Handle, Query, Read, Steps

__all__ = ["exec_command", "open_console", "read_file", "write_file"]

log = logging.getLogger("polyvisor")

_CONSOLE_STATES = (PowerState.RUNNING, PowerState.PAUSED)
_GUEST_STATES = (PowerState.RUNNING,)


def open_console(vm: Handle, force: bool, timeout: float) -> Steps[ConsoleChannel]:
    """Open the VM's serial console (taking it over from another client with ``force``)."""
    deadline = _deadline(vm, timeout)
    yield from require(vm, Feature.CONSOLE_STREAM, deadline)
    yield from _in_state(vm, _CONSOLE_STATES, "open the serial console of", deadline)
    uuid = vm.uuid
    channel: ConsoleChannel = yield Change(
        lambda b: b.open_console(uuid, force=force, deadline=deadline), "opening the serial console", deadline
    )
    log.info("opened the serial console of %r on %s", vm.seen_name, vm.connection.host)
    return channel


def exec_command(
    vm: Handle,
    argv: Sequence[str | bytes],
    stdin: bytes | str | None,
    credentials: GuestCredentials | None,
    timeout: float,
) -> Steps[ExecResult]:
    """Run ``argv`` in the guest and return how it ended, with its output."""
    clean = validate_argv(argv)
    data = validate_input(stdin)
    deadline = _deadline(vm, timeout)
    caps = yield from require(vm, Feature.GUEST_EXEC, deadline)
    _check_credentials(vm, caps, credentials)
    yield from _in_state(vm, _GUEST_STATES, "run a command in", deadline)
    uuid = vm.uuid
    log.info("running %r in %r on %s", clean[0], vm.seen_name, vm.connection.host)  # argv[0] only: args may be secret
    result: ExecResult = yield Change(
        lambda b: b.guest_exec(uuid, clean, data, credentials, deadline),
        f"running {clean[0]!r} in the guest",
        deadline,
    )
    return result


def read_file(vm: Handle, path: str, credentials: GuestCredentials | None, limit: int, timeout: float) -> Steps[bytes]:
    """Return the bytes of a file in the guest."""
    path = validate_guest_path(path)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_FILE_BYTES:
        raise ValidationError(f"must be an int from 1 to {MAX_FILE_BYTES}, got {limit!r}", field="limit")
    deadline = _deadline(vm, timeout)
    yield from _files(vm, credentials, deadline)
    uuid = vm.uuid
    data: bytes = yield Query(lambda b: b.guest_read_file(uuid, path, limit, credentials, deadline), deadline)
    return data


def write_file(
    vm: Handle, path: str, data: bytes | str, credentials: GuestCredentials | None, timeout: float
) -> Steps[None]:
    """Write ``data`` to a file in the guest, replacing what was there."""
    path = validate_guest_path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ValidationError(f"must be bytes or str, got {type(data).__name__}", field="data")
    payload = bytes(payload)
    if len(payload) > MAX_FILE_BYTES:
        raise ValidationError(f"holds {len(payload)} bytes, more than {MAX_FILE_BYTES}", field="data")
    deadline = _deadline(vm, timeout)
    yield from _files(vm, credentials, deadline)
    uuid = vm.uuid
    yield Change(
        lambda b: b.guest_write_file(uuid, path, payload, credentials, deadline),
        f"writing {path} in the guest",
        deadline,
    )


def _deadline(vm: Handle, timeout: float) -> Deadline:
    validate_timeout(timeout)
    return Deadline(timeout, vm.connection.clock)


def _files(vm: Handle, credentials: GuestCredentials | None, deadline: Deadline) -> Steps[None]:
    caps = yield from require(vm, Feature.GUEST_FILES, deadline)
    _check_credentials(vm, caps, credentials)
    yield from _in_state(vm, _GUEST_STATES, "copy files in or out of", deadline)


def _check_credentials(vm: Handle, caps: Capabilities, credentials: GuestCredentials | None) -> None:
    if credentials is not None and not isinstance(credentials, GuestCredentials):
        raise ValidationError(
            f"must be a GuestCredentials(username, password), got {type(credentials).__name__}", field="credentials"
        )
    logs_in = caps.supports(Feature.GUEST_LOGIN)
    if logs_in and credentials is None:
        raise ValidationError(
            f"{caps.backend or 'this backend'} logs into the guest to run commands: pass "
            "credentials=GuestCredentials(user, password) of an account in the guest",
            field="credentials",
        )
    if not logs_in and credentials is not None:
        raise UnsupportedError(
            f"{caps.backend or 'this backend'} runs commands as its guest agent's own account and cannot log in "
            "as another user; drop credentials= (or run 'su'/'runuser' as the command)",
            feature=Feature.GUEST_LOGIN,
            host=vm.connection.host,
            vm=vm.seen_name,
        )


def _in_state(vm: Handle, accepted: tuple[PowerState, ...], doing: str, deadline: Deadline) -> Steps[None]:
    status: VMStatus = yield Read(deadline.extended(READ_GRACE))
    if status.state not in accepted:
        names = " or ".join(state.value for state in accepted)
        raise InvalidStateError(
            f"cannot {doing} a VM that is {status.state.value} (accepts: {names}); start it first",
            state=status.state,
            accepted=accepted,
            host=vm.connection.host,
            vm=vm.seen_name,
        )
