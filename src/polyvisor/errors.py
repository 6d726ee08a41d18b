"""The polyvisor error tree.

Every backend maps its native errors onto this tree and keeps the native error as ``__cause__``::

    PolyvisorError
    ├── ConnectionError             cannot reach or talk to the hypervisor (also builtin ConnectionError)
    │   ├── AuthenticationError     the hypervisor refused the credentials
    │   └── ConnectionLostError     the link dropped during a call; the next call reconnects
    ├── NotFoundError               no such VM, snapshot, network, plugin, ... (also LookupError)
    ├── AlreadyExistsError          the name or UUID is taken
    ├── InvalidStateError           the verb is impossible from the VM's current state
    ├── InUseError                  a volume or pool cannot go: VMs use it (named in ``users``)
    ├── UnsupportedError            the backend (or this VM) does not declare the feature
    ├── ValidationError             bad input, rejected before any backend call (also ValueError)
    │   └── PlacementError          no host of a fleet fits a new VM; says why, host by host
    ├── TimeoutError                the target state was not observed in time (also builtin TimeoutError)
    ├── BackendError                anything else the hypervisor reported; native code and message kept
    └── FleetError                  some hosts of a fleet call failed; each host's error kept

Messages say what was being done, on which host and VM, and what to do next. They never contain credentials.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyvisor.model import Feature, PowerState

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "BackendError",
    "ConnectionError",
    "ConnectionLostError",
    "FleetError",
    "InUseError",
    "InvalidStateError",
    "NotFoundError",
    "PlacementError",
    "PolyvisorError",
    "TimeoutError",
    "UnsupportedError",
    "ValidationError",
]


class PolyvisorError(Exception):
    """Base class of every error polyvisor raises."""

    def __init__(self, message: str, *, host: str | None = None, vm: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.vm = vm

    def __str__(self) -> str:
        where = []
        if self.vm is not None:
            where.append(f"vm {self.vm!r}")
        if self.host is not None:
            where.append(f"host {self.host}")
        return f"{self.message} [{', '.join(where)}]" if where else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[PolyvisorError], message: str, state: dict[str, Any]) -> PolyvisorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConnectionError(PolyvisorError, builtins.ConnectionError):
    """The hypervisor cannot be reached, or the connection broke."""


class AuthenticationError(ConnectionError):
    """The hypervisor refused the credentials."""


class ConnectionLostError(ConnectionError):
    """The link to the hypervisor dropped during a call; the backend reconnects on the next one.

    ``outcome_unknown`` is True when a change may or may not have taken effect.
    """

    def __init__(
        self, message: str, *, host: str | None = None, vm: str | None = None, outcome_unknown: bool = False
    ) -> None:
        super().__init__(message, host=host, vm=vm)
        self.outcome_unknown = outcome_unknown


class NotFoundError(PolyvisorError, LookupError):
    """The VM (or snapshot, network, backend plugin) does not exist."""


class AlreadyExistsError(PolyvisorError):
    """An object with this name or UUID already exists."""


class InvalidStateError(PolyvisorError):
    """The verb cannot run from the VM's current state."""

    def __init__(
        self,
        message: str,
        *,
        state: PowerState,
        accepted: Iterable[PowerState] = (),
        host: str | None = None,
        vm: str | None = None,
    ) -> None:
        super().__init__(message, host=host, vm=vm)
        self.state = state
        self.accepted = tuple(accepted)


class InUseError(PolyvisorError):
    """Something VMs use cannot be deleted or given to another VM (a volume, a pool holding one, a network, a host
    device); ``users`` names them."""

    def __init__(self, message: str, *, users: Iterable[str], host: str | None = None) -> None:
        super().__init__(message, host=host)
        self.users = tuple(users)


class UnsupportedError(PolyvisorError):
    """The backend or VM does not support the requested feature."""

    def __init__(
        self,
        message: str,
        *,
        feature: Feature | None,
        host: str | None = None,
        vm: str | None = None,
    ) -> None:
        super().__init__(message, host=host, vm=vm)
        self.feature = feature
        """The feature the call needed, or None when the hypervisor refused something no feature names."""


class ValidationError(PolyvisorError, ValueError):
    """Input was rejected before anything was sent to the hypervisor."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class TimeoutError(PolyvisorError, builtins.TimeoutError):
    """The expected state was not observed before the deadline; the VM was left as it was."""


class BackendError(PolyvisorError):
    """The hypervisor reported an error that has no more specific class; its code and text are kept."""

    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        native_message: str | None = None,
        host: str | None = None,
        vm: str | None = None,
    ) -> None:
        super().__init__(message, host=host, vm=vm)
        self.code = code
        self.native_message = native_message


class PlacementError(ValidationError):
    """No host of the fleet fits the VM; ``reasons`` maps each host to why it was passed over."""

    def __init__(self, message: str, *, reasons: Mapping[str, str]) -> None:
        super().__init__(message, field="placement")
        self.reasons = dict(reasons)


class FleetError(PolyvisorError):
    """Some hosts (or VMs) of a fleet call failed; ``errors`` maps each one's key to its error."""

    def __init__(self, message: str, *, errors: Mapping[str, PolyvisorError]) -> None:
        super().__init__(message)
        self.errors = dict(errors)
