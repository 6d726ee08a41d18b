"""Process exit codes of the ``polyvisor`` command, one per class of the error tree.

Scripts can branch on them without parsing messages; ``polyvisor --help`` prints the table.
"""

from __future__ import annotations

from polyvisor.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConnectionError,
    InvalidStateError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)

__all__ = [
    "ALREADY_EXISTS",
    "AUTHENTICATION",
    "CONNECTION",
    "ERROR",
    "EXIT_CODES",
    "INVALID_STATE",
    "NOT_FOUND",
    "OK",
    "PARTIAL",
    "TIMEOUT",
    "UNSUPPORTED",
    "USAGE",
    "exit_code_for",
]

OK = 0
ERROR = 1
"""Any other PolyvisorError, BackendError included."""
USAGE = 2
"""Bad command line (click's own code) or input rejected by validation."""
NOT_FOUND = 3
INVALID_STATE = 4
TIMEOUT = 5
CONNECTION = 6
AUTHENTICATION = 7
UNSUPPORTED = 8
ALREADY_EXISTS = 9
PARTIAL = 10
"""A group command (``-c GROUP``) where some hosts or VMs failed; the others' results were printed."""

# Most specific first: AuthenticationError is a ConnectionError.
_BY_CLASS: tuple[tuple[type[PolyvisorError], int], ...] = (
    (AuthenticationError, AUTHENTICATION),
    (ConnectionError, CONNECTION),
    (ValidationError, USAGE),
    (NotFoundError, NOT_FOUND),
    (InvalidStateError, INVALID_STATE),
    (TimeoutError, TIMEOUT),
    (UnsupportedError, UNSUPPORTED),
    (AlreadyExistsError, ALREADY_EXISTS),
)

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (OK, "success"),
    (ERROR, "other error reported by polyvisor or the hypervisor (BackendError)"),
    (USAGE, "bad usage or invalid input (ValidationError)"),
    (NOT_FOUND, "no such VM, snapshot, connection name or backend (NotFoundError)"),
    (INVALID_STATE, "the VM's state does not allow the command (InvalidStateError)"),
    (TIMEOUT, "the expected state was not observed in time (TimeoutError)"),
    (CONNECTION, "cannot reach the hypervisor (ConnectionError)"),
    (AUTHENTICATION, "the hypervisor refused the credentials (AuthenticationError)"),
    (UNSUPPORTED, "the backend does not support the feature (UnsupportedError)"),
    (ALREADY_EXISTS, "the name is already taken (AlreadyExistsError)"),
    (PARTIAL, "with -c GROUP: some hosts or VMs failed (each error on stderr), the others' results printed"),
)
"""(code, meaning) for the help text and the docs."""


def exit_code_for(error: PolyvisorError) -> int:
    """Return the exit code for an error of the polyvisor tree."""
    for cls, code in _BY_CLASS:
        if isinstance(error, cls):
            return code
    return ERROR
