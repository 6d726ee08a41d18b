"""libvirt errors mapped onto the polyvisor error tree.

Every ``VIR_ERR_*`` constant has an explicit entry in :data:`ERROR_KINDS` (a test enforces it); a code libvirt adds
later falls back to :class:`~polyvisor.errors.BackendError`, which keeps the native code name and message.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType

import libvirt

from polyvisor.errors import (
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    ConnectionError,
    ConnectionLostError,
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.model import PowerState

__all__ = ["ERROR_KINDS", "ErrorKind", "code_name", "convert", "map_libvirt_errors"]


class ErrorKind(enum.Enum):
    """Which polyvisor error a libvirt error code becomes."""

    NOT_FOUND = "not-found"
    INVALID_STATE = "invalid-state"
    EXISTS = "already-exists"
    UNSUPPORTED = "unsupported"
    AUTH = "authentication"
    CONNECTION = "connection"
    CONNECTION_LOST = "connection-lost"
    TIMEOUT = "timeout"
    VALIDATION = "validation"
    BACKEND = "backend"


K = ErrorKind

ERROR_KINDS = MappingProxyType(
    {
        # Error *levels* share the constant prefix; they never arrive as codes but are listed to be explicit.
        "VIR_ERR_NONE": K.BACKEND,
        "VIR_ERR_OK": K.BACKEND,
        "VIR_ERR_WARNING": K.BACKEND,
        "VIR_ERR_ERROR": K.BACKEND,
        "VIR_ERR_INTERNAL_ERROR": K.BACKEND,
        "VIR_ERR_NO_MEMORY": K.BACKEND,
        "VIR_ERR_NO_SUPPORT": K.UNSUPPORTED,
        "VIR_ERR_UNKNOWN_HOST": K.CONNECTION,
        "VIR_ERR_NO_CONNECT": K.CONNECTION,
        "VIR_ERR_INVALID_CONN": K.CONNECTION,
        "VIR_ERR_INVALID_DOMAIN": K.NOT_FOUND,  # a handle on a domain that went away
        "VIR_ERR_INVALID_ARG": K.VALIDATION,
        "VIR_ERR_OPERATION_FAILED": K.BACKEND,
        "VIR_ERR_GET_FAILED": K.CONNECTION,
        "VIR_ERR_POST_FAILED": K.CONNECTION,
        "VIR_ERR_HTTP_ERROR": K.CONNECTION,
        "VIR_ERR_SEXPR_SERIAL": K.BACKEND,
        "VIR_ERR_NO_XEN": K.CONNECTION,
        "VIR_ERR_XEN_CALL": K.BACKEND,
        "VIR_ERR_OS_TYPE": K.VALIDATION,
        "VIR_ERR_NO_KERNEL": K.VALIDATION,
        "VIR_ERR_NO_ROOT": K.VALIDATION,
        "VIR_ERR_NO_SOURCE": K.VALIDATION,
        "VIR_ERR_NO_TARGET": K.VALIDATION,
        "VIR_ERR_NO_NAME": K.VALIDATION,
        "VIR_ERR_NO_OS": K.VALIDATION,
        "VIR_ERR_NO_DEVICE": K.NOT_FOUND,
        "VIR_ERR_NO_XENSTORE": K.CONNECTION,
        "VIR_ERR_DRIVER_FULL": K.BACKEND,
        "VIR_ERR_CALL_FAILED": K.BACKEND,
        "VIR_ERR_XML_ERROR": K.VALIDATION,
        "VIR_ERR_DOM_EXIST": K.EXISTS,
        "VIR_ERR_OPERATION_DENIED": K.AUTH,
        "VIR_ERR_OPEN_FAILED": K.BACKEND,
        "VIR_ERR_READ_FAILED": K.BACKEND,
        "VIR_ERR_PARSE_FAILED": K.VALIDATION,
        "VIR_ERR_CONF_SYNTAX": K.VALIDATION,
        "VIR_ERR_WRITE_FAILED": K.BACKEND,
        "VIR_ERR_XML_DETAIL": K.VALIDATION,
        "VIR_ERR_INVALID_NETWORK": K.NOT_FOUND,
        "VIR_ERR_NETWORK_EXIST": K.EXISTS,
        "VIR_ERR_SYSTEM_ERROR": K.CONNECTION,  # CONNECTION_LOST when the RPC layer reports it (see _refine)
        "VIR_ERR_RPC": K.CONNECTION_LOST,
        "VIR_ERR_GNUTLS_ERROR": K.CONNECTION,
        "VIR_ERR_NO_DOMAIN": K.NOT_FOUND,
        "VIR_ERR_NO_NETWORK": K.NOT_FOUND,
        "VIR_ERR_INVALID_MAC": K.VALIDATION,
        "VIR_ERR_AUTH_FAILED": K.AUTH,
        "VIR_ERR_INVALID_STORAGE_POOL": K.NOT_FOUND,
        "VIR_ERR_INVALID_STORAGE_VOL": K.NOT_FOUND,
        "VIR_ERR_NO_STORAGE_POOL": K.NOT_FOUND,
        "VIR_ERR_NO_STORAGE_VOL": K.NOT_FOUND,
        "VIR_ERR_INVALID_NODE_DEVICE": K.NOT_FOUND,
        "VIR_ERR_NO_NODE_DEVICE": K.NOT_FOUND,
        "VIR_ERR_NO_SECURITY_MODEL": K.UNSUPPORTED,
        "VIR_ERR_OPERATION_INVALID": K.INVALID_STATE,
        "VIR_ERR_NO_INTERFACE": K.NOT_FOUND,
        "VIR_ERR_INVALID_INTERFACE": K.NOT_FOUND,
        "VIR_ERR_MULTIPLE_INTERFACES": K.VALIDATION,
        "VIR_ERR_INVALID_NWFILTER": K.NOT_FOUND,
        "VIR_ERR_NO_NWFILTER": K.NOT_FOUND,
        "VIR_ERR_BUILD_FIREWALL": K.BACKEND,
        "VIR_ERR_INVALID_SECRET": K.NOT_FOUND,
        "VIR_ERR_NO_SECRET": K.NOT_FOUND,
        "VIR_ERR_CONFIG_UNSUPPORTED": K.UNSUPPORTED,
        "VIR_ERR_OPERATION_TIMEOUT": K.TIMEOUT,
        "VIR_ERR_MIGRATE_PERSIST_FAILED": K.BACKEND,
        "VIR_ERR_HOOK_SCRIPT_FAILED": K.BACKEND,
        "VIR_ERR_INVALID_DOMAIN_SNAPSHOT": K.NOT_FOUND,
        "VIR_ERR_NO_DOMAIN_SNAPSHOT": K.NOT_FOUND,
        "VIR_ERR_INVALID_STREAM": K.BACKEND,
        "VIR_ERR_ARGUMENT_UNSUPPORTED": K.UNSUPPORTED,
        "VIR_ERR_STORAGE_PROBE_FAILED": K.BACKEND,
        "VIR_ERR_STORAGE_POOL_BUILT": K.EXISTS,
        "VIR_ERR_SNAPSHOT_REVERT_RISKY": K.INVALID_STATE,
        "VIR_ERR_OPERATION_ABORTED": K.BACKEND,
        "VIR_ERR_AUTH_CANCELLED": K.AUTH,
        "VIR_ERR_NO_DOMAIN_METADATA": K.NOT_FOUND,
        "VIR_ERR_MIGRATE_UNSAFE": K.BACKEND,
        "VIR_ERR_OVERFLOW": K.VALIDATION,
        "VIR_ERR_BLOCK_COPY_ACTIVE": K.INVALID_STATE,
        "VIR_ERR_OPERATION_UNSUPPORTED": K.UNSUPPORTED,
        "VIR_ERR_SSH": K.CONNECTION,
        "VIR_ERR_AGENT_UNRESPONSIVE": K.TIMEOUT,
        "VIR_ERR_RESOURCE_BUSY": K.INVALID_STATE,
        "VIR_ERR_ACCESS_DENIED": K.AUTH,
        "VIR_ERR_DBUS_SERVICE": K.BACKEND,
        "VIR_ERR_STORAGE_VOL_EXIST": K.EXISTS,
        "VIR_ERR_CPU_INCOMPATIBLE": K.UNSUPPORTED,
        "VIR_ERR_XML_INVALID_SCHEMA": K.VALIDATION,
        "VIR_ERR_MIGRATE_FINISH_OK": K.BACKEND,
        "VIR_ERR_AUTH_UNAVAILABLE": K.AUTH,
        "VIR_ERR_NO_SERVER": K.CONNECTION,
        "VIR_ERR_NO_CLIENT": K.CONNECTION,
        "VIR_ERR_AGENT_UNSYNCED": K.TIMEOUT,
        "VIR_ERR_LIBSSH": K.CONNECTION,
        "VIR_ERR_DEVICE_MISSING": K.NOT_FOUND,
        "VIR_ERR_INVALID_NWFILTER_BINDING": K.NOT_FOUND,
        "VIR_ERR_NO_NWFILTER_BINDING": K.NOT_FOUND,
        "VIR_ERR_INVALID_DOMAIN_CHECKPOINT": K.NOT_FOUND,
        "VIR_ERR_NO_DOMAIN_CHECKPOINT": K.NOT_FOUND,
        "VIR_ERR_NO_DOMAIN_BACKUP": K.NOT_FOUND,
        "VIR_ERR_INVALID_NETWORK_PORT": K.NOT_FOUND,
        "VIR_ERR_NETWORK_PORT_EXIST": K.EXISTS,
        "VIR_ERR_NO_NETWORK_PORT": K.NOT_FOUND,
        "VIR_ERR_NO_HOSTNAME": K.BACKEND,
        "VIR_ERR_CHECKPOINT_INCONSISTENT": K.BACKEND,
        "VIR_ERR_MULTIPLE_DOMAINS": K.VALIDATION,
    }
)
"""The polyvisor error kind of every libvirt error code, by constant name."""

# Error levels reuse code numbers (VIR_ERR_WARNING == VIR_ERR_INTERNAL_ERROR); never name a code after one.
_LEVELS = frozenset({"VIR_ERR_NONE", "VIR_ERR_OK", "VIR_ERR_WARNING", "VIR_ERR_ERROR"})
_NAMES: dict[int, str] = {
    value: name
    for name, value in vars(libvirt).items()
    if name.startswith("VIR_ERR_") and isinstance(value, int) and name not in _LEVELS
}

# The connection-level failures libvirt reports with generic codes (e.g. INTERNAL_ERROR from the remote driver).
_CONNECTION_DOMAINS = frozenset(
    getattr(libvirt, name) for name in ("VIR_FROM_RPC", "VIR_FROM_REMOTE", "VIR_FROM_SSH", "VIR_FROM_LIBSSH")
)

_HINTS = {
    K.NOT_FOUND: "check the name (list what exists) and retry",
    K.INVALID_STATE: "check the VM's state and retry from a state the verb accepts",
    K.EXISTS: "pick another name or remove the existing object first",
    K.UNSUPPORTED: "this libvirt driver cannot do it; check capabilities before calling",
    K.AUTH: "check the user name, password or SASL/polkit configuration",
    K.CONNECTION: "check that libvirtd is running and reachable, then reconnect",
    K.CONNECTION_LOST: "the next call reconnects; check that libvirtd is running",
    K.TIMEOUT: "retry later; the guest (or its agent) did not answer in time",
    K.VALIDATION: "fix the input named in the message",
    K.BACKEND: "see libvirt's message; the daemon log may say more",
}


def code_name(code: int) -> str:
    """Return the ``VIR_ERR_*`` name of a libvirt error code (or ``VIR_ERR_<number>`` if unknown)."""
    return _NAMES.get(code, f"VIR_ERR_{code}")


def _refine(kind: ErrorKind, name: str, domain: int | None, native: str) -> ErrorKind:
    # libvirt reports a few specific conditions with generic codes; these are stable texts of its own helpers.
    if name in ("VIR_ERR_INTERNAL_ERROR", "VIR_ERR_SYSTEM_ERROR") and domain in _CONNECTION_DOMAINS:
        return K.CONNECTION_LOST  # "client socket is closed", "Cannot write data: Broken pipe", ...
    if name == "VIR_ERR_INVALID_ARG" and "unsupported flags" in native:  # virCheckFlags
        return K.UNSUPPORTED
    if name == "VIR_ERR_OPERATION_FAILED" and "already exists" in native:  # duplicate name or UUID
        return K.EXISTS
    return kind


def convert(
    error: libvirt.libvirtError,
    *,
    doing: str,
    host: str | None = None,
    vm: str | None = None,
    state: Callable[[], PowerState] | None = None,
) -> PolyvisorError:
    """Return the polyvisor error for a libvirt error (the caller raises it ``from error``)."""
    code = error.get_error_code() or 0
    name = code_name(code)
    native = error.get_error_message() or str(error)
    kind = _refine(ERROR_KINDS.get(name, K.BACKEND), name, error.get_error_domain(), native)
    message = f"{doing} failed: {native} ({name}); {_HINTS[kind]}"
    if kind is K.NOT_FOUND:
        return NotFoundError(message, host=host, vm=vm)
    if kind is K.INVALID_STATE:
        current = PowerState.UNKNOWN
        if state is not None:
            try:
                current = state()
            except Exception:  # the state is a courtesy; never hide the original error behind another one
                current = PowerState.UNKNOWN
        return InvalidStateError(message, state=current, host=host, vm=vm)
    if kind is K.EXISTS:
        return AlreadyExistsError(message, host=host, vm=vm)
    if kind is K.UNSUPPORTED:
        return UnsupportedError(message, feature=None, host=host, vm=vm)
    if kind is K.AUTH:
        return AuthenticationError(message, host=host, vm=vm)
    if kind is K.CONNECTION:
        return ConnectionError(message, host=host, vm=vm)
    if kind is K.CONNECTION_LOST:
        return ConnectionLostError(message, host=host, vm=vm)
    if kind is K.TIMEOUT:
        return TimeoutError(message, host=host, vm=vm)
    if kind is K.VALIDATION:
        where = f" [vm {vm!r}, host {host}]" if vm else (f" [host {host}]" if host else "")
        return ValidationError(message + where)
    return BackendError(message, code=name, native_message=native, host=host, vm=vm)


@contextmanager
def map_libvirt_errors(
    doing: str,
    *,
    host: str | None = None,
    vm: str | None = None,
    state: Callable[[], PowerState] | None = None,
) -> Iterator[None]:
    """Convert any :class:`libvirt.libvirtError` raised inside the block; ``doing`` says what was attempted."""
    try:
        yield
    except libvirt.libvirtError as error:
        raise convert(error, doing=doing, host=host, vm=vm, state=state) from error
