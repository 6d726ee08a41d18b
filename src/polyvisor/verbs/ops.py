"""The I/O requests the verb engine yields, and that each face carries out its own way.

The engine's steps are generators: each ``yield`` hands the face one request below and receives its answer
(:data:`Steps`). A face runs the request (the sync face directly, the asyncio face in its threads or on the event
loop) and sends the answer back, or throws the :class:`~polyvisor.errors.PolyvisorError` the request raised into
the steps, which decide whether it ends the call. When the steps return, their value is the call's result.

Each request that talks to the host carries the call's :class:`~polyvisor.backend.Deadline` (None: the face's
default), which the face hands to :mod:`polyvisor.calls`: the backend's socket waits end with it.

A face keeps at most one subscription per call: it starts it at :class:`Subscribe`, ends it at
:class:`Unsubscribe`, and ends it too when the steps stop with an error (or the call is cancelled).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from polyvisor.backend import Backend, Deadline

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = [
    "Change",
    "Handle",
    "Knock",
    "KnockReply",
    "Op",
    "Probe",
    "Query",
    "Read",
    "Sleep",
    "Steps",
    "Subscribe",
    "Unsubscribe",
]

_T = TypeVar("_T")


class Handle(Protocol):
    """What the engine reads of a VM handle, none of which asks the hypervisor (:class:`polyvisor.VM` has it)."""

    @property
    def uuid(self) -> str: ...

    @property
    def seen_name(self) -> str: ...

    @property
    def connection(self) -> Connection: ...


@dataclass(frozen=True)
class Read:
    """Read the VM's status now; answer with the :class:`~polyvisor.model.VMStatus`.

    While a subscription is on, forget the events that came before this read: they can only wake a sleep that
    follows it.
    """

    deadline: Deadline | None = None


@dataclass(frozen=True)
class Probe:
    """Read the VM's capabilities now (:meth:`polyvisor.VM.capabilities`); answer with them."""

    deadline: Deadline | None = None


@dataclass(frozen=True)
class Query:
    """Run a read-only backend call (:func:`polyvisor.calls.read`); answer with its result."""

    call: Callable[[Backend], Any]
    deadline: Deadline | None = None


@dataclass(frozen=True)
class Change:
    """Run a mutating backend call (:func:`polyvisor.calls.change`, saying what it was ``doing``); answer with its
    result (None for the lifecycle primitives)."""

    call: Callable[[Backend], object]
    doing: str
    deadline: Deadline | None = None


@dataclass(frozen=True)
class Subscribe:
    """Start taking the backend's lifecycle events, so that they end a :class:`Sleep` early; answer None."""


@dataclass(frozen=True)
class Unsubscribe:
    """End the subscription :class:`Subscribe` started; answer None."""


@dataclass(frozen=True)
class Sleep:
    """Sleep ``seconds``, or less if an event arrives while subscribed; answer None."""

    seconds: float


@dataclass(frozen=True)
class Knock:
    """Open a TCP connection to ``host``:``port`` and read what the server says first, for at most ``seconds``
    in all; answer with a :class:`KnockReply` (never raise: a refused or silent port is an answer too).

    Reading stops at :func:`polyvisor.provisioning.readiness.banner_complete`, at the end of the stream or at the
    time limit; the connection is then closed without sending a byte.
    """

    host: str
    port: int
    seconds: float


@dataclass(frozen=True)
class KnockReply:
    """What a :class:`Knock` got: the bytes read, and the error that ended it (None when it ended cleanly)."""

    data: bytes = b""
    error: str | None = None


Op: TypeAlias = Read | Probe | Query | Change | Subscribe | Unsubscribe | Sleep | Knock
"""One I/O request of the engine."""

Steps: TypeAlias = Generator[Op, Any, _T]
"""A call's steps: they yield requests, receive the answers, and return the call's result."""
