"""How the core calls a backend: under the caller's deadline; a read is tried once more after a dropped
connection, a change is not.

Both faces use these two functions for every backend call they make, so a dropped connection means the same on the
sync and the asyncio face: a read-only call reconnects and runs again (if its deadline has not passed); a mutating
call reports that its outcome is unknown (the next call reconnects). The call's :class:`~polyvisor.backend.Deadline`
is :meth:`~polyvisor.backend.Deadline.current` while the backend runs, so its socket waits end with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from polyvisor.backend import Backend, Deadline
from polyvisor.errors import ConnectionLostError

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["change", "read"]

log = logging.getLogger("polyvisor")

_T = TypeVar("_T")


def read(connection: Connection, call: Callable[[Backend], _T], deadline: Deadline | None = None) -> _T:
    """Run a read-only backend call under ``deadline``, once more if the connection dropped (the backend
    reconnects) and time is left."""
    with (deadline or Deadline.current()).applied() as bound:
        try:
            return call(connection.backend)
        except ConnectionLostError as error:
            if bound.expired:
                raise
            log.info("connection to %s dropped (%s); reconnecting", connection.host, error)
            return call(connection.backend)


def change(
    connection: Connection,
    call: Callable[[Backend], _T],
    doing: str,
    vm: str | None = None,
    deadline: Deadline | None = None,
) -> _T:
    """Run a mutating backend call under ``deadline``; a dropped connection makes its outcome unknown, and says so."""
    with (deadline or Deadline.current()).applied():
        try:
            return call(connection.backend)
        except ConnectionLostError as error:
            raise ConnectionLostError(
                f"the connection dropped while {doing}, so whether it took effect is unknown; check the VM's "
                f"state before trying again (the next call reconnects): {error.message}",
                host=connection.host,
                vm=vm,
                outcome_unknown=True,
            ) from error
