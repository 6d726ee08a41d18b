"""The one interface both transports implement: run a :class:`~polyvisor_hyperv.commands.Request`, get plain dicts.

A transport keeps one warm session (a PSRP runspace pool, or one WinRM shell) and reuses it for every request.
Errors come out already mapped onto polyvisor's tree:

* a request the host refused before anything ran (the shell is gone, a restarted host answers 400/401, no TCP
  connection) is retried once on a fresh session;
* any other connection-level failure of a session that existed drops it and raises ConnectionLostError; the next
  request opens a new session (failing to open one at all is a plain ConnectionError);
* a request still running when its verb's deadline (or ``command_timeout``) passes is stopped on the host (PSRP
  Ctrl+C signal; WinRS Terminate signal) and raises TimeoutError, with the session still usable;
* every HTTP request is bounded by the call's deadline (the verb's, else :meth:`Deadline.current`, the caller's
  timeout of a read): its socket waits end with it (:mod:`~polyvisor_hyperv.http_bounds`); a request the network
  holds past it raises TimeoutError, saying whether it ran is unknown, and the session is dropped.

Threads sharing a connection run in parallel: :class:`TransportPool` gives each call a warm session of its own
(one runspace pool, or one shell, on its own HTTP connection), opening another only while every open one is busy,
up to the ``sessions`` option. One thread keeps to one session.

The factory choosing an implementation is :func:`polyvisor_hyperv.backend.open_transport`: this module imports none.
"""

from __future__ import annotations

import abc
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from polyvisor.backend import Deadline
from polyvisor.errors import ConnectionError, ConnectionLostError, PolyvisorError, TimeoutError
from polyvisor_hyperv.commands import Request
from polyvisor_hyperv.errors import ErrorRecord, error_from_record, error_from_transport
from polyvisor_hyperv.http_bounds import Budget, DeadlinePassed
from polyvisor_hyperv.options import ConnectionOptions

__all__ = [
    "Invoker",
    "Limit",
    "ScriptEnded",
    "SessionLost",
    "Transport",
    "TransportPool",
    "parse_datetime",
    "refused_before_running",
    "shell_is_gone",
]

Row = dict[str, Any]
# Seconds an HTTP request may run past the call's deadline: the host answers a Receive held up to the deadline a
# moment after it, and the loop then stops the command (it must not be cut off as a network failure).
NETWORK_GRACE = 0.3
# Seconds the request that stops a command cut off by the deadline may take (PSRP Stop; WinRS Terminate signal).
STOP_GRACE = 0.6
# ERROR_WSMAN_INVALID_SELECTORS: the ShellId names no shell, i.e. the host deleted it (idle timeout, restart).
_SHELL_NOT_FOUND = 2150858843
# ERROR_WINRS_SHELL_DISCONNECTED: the runspace pool idled out into Disconnected; it takes no command.
_SHELL_DISCONNECTED = 2150859204


class ScriptEnded(Exception):
    """A long-running script (a transport's ``stream``) ended on the host by itself, with this error record."""

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


class SessionLost(Exception):
    """The host no longer has the session, and the request was refused before anything ran (raise ``from`` it)."""


def shell_is_gone(error: BaseException) -> bool:
    """Return whether a pypsrp/pywinrm WSManFaultError says the shell (runspace pool) no longer exists."""
    for name in ("wsman_fault_code", "code"):  # pywinrm's .code is the HTTP status; pypsrp's is the fault code
        try:
            if getattr(error, name, None) == _SHELL_NOT_FOUND:
                return True
        except (IndexError, KeyError, TypeError):  # pypsrp computes attributes from args
            continue
    return False


def _code_of(error: BaseException) -> object:
    try:
        return getattr(error, "code", None)
    except (IndexError, KeyError, TypeError):  # pypsrp computes attributes from args
        return None


def refused_before_running(error: BaseException) -> bool:
    """Return whether the request that would start a command was refused, so that nothing ran.

    True for: the shell (runspace pool) is gone, or disconnected (idled out); the HTTP layer refused the request
    (400 or 401: a restarted host knows neither the session's authentication nor its message encryption); no TCP
    connection could be made.
    """
    import requests
    import urllib3.exceptions
    import winrm.exceptions as winrm_errors
    from pypsrp import exceptions as psrp_errors

    if shell_is_gone(error) or _code_of(error) == _SHELL_DISCONNECTED:
        return True
    if isinstance(error, winrm_errors.WinRMTransportError | psrp_errors.WinRMTransportError):
        try:
            return getattr(error, "code", None) in (400, 401)
        except (IndexError, KeyError, TypeError):  # pypsrp computes attributes from args
            return False
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError) and error.args:
        reason = getattr(error.args[0], "reason", error.args[0])
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


class Limit:
    """When a request must be finished: the verb's deadline or ``command_timeout``, whichever comes first."""

    __slots__ = ("deadline", "explicit", "host", "verb", "vm")

    def __init__(
        self,
        deadline: Deadline | None,
        command_timeout: float,
        host: str,
        vm: str | None = None,
        *,
        explicit: bool = True,
    ) -> None:
        self.explicit = explicit
        """Whether the deadline is a primitive's own (a verb's): a command still running close to it is stopped
        rather than read once more. A read's deadline (the caller's, from :meth:`Deadline.current`) is used to its
        end: its last Receive may still bring the reply."""
        own = Deadline(command_timeout)
        self.verb = deadline is not None and deadline.at <= own.at
        self.deadline = deadline if deadline is not None and self.verb else own
        self.host = host
        self.vm = vm

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return self.deadline.remaining()

    def poll_interval(self, longest: float, shortest: float) -> float:
        """How long one Receive may be held: at most ``longest``, at most what is left, at least ``shortest``."""
        return max(shortest, min(longest, self.remaining()))

    def cut_off(self) -> TimeoutError:
        """The error for a request the network held past this limit (the host may or may not have run it)."""
        what = (
            f"timed out after {self.deadline.timeout:g}s"
            if self.verb
            else (f"ran longer than command_timeout={self.deadline.timeout:g}s")
        )
        return TimeoutError(
            f"{what}: the host did not answer in time (the network to it is down or slow), so whether the request "
            "ran on the host is unknown; check the VM before trying again (the next call opens a new session)",
            host=self.host,
            vm=self.vm,
        )

    def timed_out(self, *, stopped: bool) -> TimeoutError:
        """The error for a request cut off by this limit."""
        vm = self.vm
        what = "was stopped on the host" if stopped else "could not be confirmed stopped on the host"
        if self.verb:
            return TimeoutError(
                f"timed out after {self.deadline.timeout:g}s; the running command {what} and the VM was left as "
                "the hypervisor has it",
                host=self.host,
                vm=vm,
            )
        return TimeoutError(
            f"the operation ran longer than command_timeout={self.deadline.timeout:g}s; it {what}. Pass a larger "
            "command_timeout to connect() if the host is slow",
            host=self.host,
            vm=vm,
        )


class Transport(abc.ABC):
    """A warm PowerShell session on one host."""

    def __init__(self, options: ConnectionOptions) -> None:
        self.options = options
        self._lock = threading.RLock()
        self._closed = False
        self._budget = Budget()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.options.endpoint} user={self.options.username!r}>"

    def invoke(
        self, request: Request, *, doing: str, vm: str | None = None, deadline: Deadline | None = None
    ) -> list[Row]:
        """Run the request; return the output objects as dicts of plain values, or raise a polyvisor error.

        The request is stopped on the host and TimeoutError raised when the ``deadline`` (a verb's) or the
        connection's ``command_timeout`` passes, whichever comes first; either way the session stays usable.
        """
        host = self.options.host
        limit = Limit(
            deadline if deadline is not None else Deadline.current(),
            self.options.command_timeout,
            host,
            vm,
            explicit=deadline is not None,
        )
        with self._lock, self._budget.until(limit.deadline.extended(NETWORK_GRACE)):
            if self._closed:
                raise ConnectionError("the connection is closed", host=host)
            if limit.verb and limit.deadline.expired:
                raise limit.timed_out(stopped=True)
            warm = self._is_open()
            try:
                try:
                    rows, record = self._invoke(request, limit)
                except SessionLost:
                    # Nothing ran, so one retry on a fresh session cannot run a cmdlet twice.
                    self._discard()
                    rows, record = self._invoke(request, limit)
            except PolyvisorError:
                raise
            except DeadlinePassed as error:
                self._discard()  # a request cut off mid-way leaves the session in doubt
                raise limit.cut_off() from error
            except Exception as error:
                cause = (error.__cause__ or error) if isinstance(error, SessionLost) else error
                # A session that existed (before this call, or opened during it) and then failed at the connection
                # level was lost; failing to open one at all means the host cannot be reached.
                lost = warm or self._is_open()
                # Connection-level failure: the session may be half-dead; start a fresh one next time.
                self._discard()
                options = self.options
                mapped = error_from_transport(
                    cause,
                    doing=doing,
                    host=host,
                    endpoint=options.endpoint,
                    auth=options.auth,
                    spn=options.service_principal,
                    username=options.username,
                )
                if lost and type(mapped) is ConnectionError:
                    raise ConnectionLostError(
                        f"the connection to the host dropped ({mapped.message}); the next call opens a new session",
                        host=host,
                        vm=vm,
                    ) from cause
                raise mapped from cause
        if record is not None:
            raise error_from_record(record, doing=doing, host=host, vm=vm)
        return rows

    def stream(self, script: str, on_line: Callable[[str], None], stop: threading.Event) -> None:
        """Run a fixed, long-running script on this transport's own session, handing each output line to
        ``on_line`` as it arrives, until ``stop`` is set (then stop it on the host and return). A script that ends
        by itself raises :class:`ScriptEnded`; a connection failure raises the client library's error."""
        raise NotImplementedError(f"{type(self).__name__} cannot stream")

    def close(self) -> None:
        """Close the session; safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._shutdown()

    @abc.abstractmethod
    def _invoke(self, request: Request, limit: Limit) -> tuple[list[Row], ErrorRecord | None]:
        """Run the request on the warm session (opening it first if needed); stop it and raise
        ``limit.timed_out()`` when the limit passes."""

    @abc.abstractmethod
    def _is_open(self) -> bool:
        """Return whether a session is open (warm), without talking to the host."""

    @abc.abstractmethod
    def _discard(self) -> None:
        """Forget a session that failed, without raising."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Close the session politely, without raising."""


class Invoker(Protocol):
    """What the backend calls: run a request, close."""

    def invoke(
        self, request: Request, *, doing: str, vm: str | None = None, deadline: Deadline | None = None
    ) -> list[Row]: ...

    def close(self) -> None: ...


class TransportPool:
    """Up to ``size`` warm sessions for threads that share one connection.

    pypsrp and pywinrm have no locks: a WSMan or Protocol object has one requests session and one security
    context, and with message encryption (NTLM sealing keeps sequence numbers) its HTTP exchanges must not
    interleave. A Receive may be held by the host for up to OperationTimeout, so sharing one session would make
    every thread wait for the slowest. Each session here is used by one call at a time; a call takes the session
    used last (a single thread always gets the same warm one), opens another while fewer than ``size`` exist, or
    waits for one to come back.
    """

    def __init__(self, factory: Callable[[], Transport], size: int, host: str) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one session")
        self._factory = factory
        self._size = size
        self._host = host
        self._idle: list[Transport] = []
        self._all: list[Transport] = []
        self._changed = threading.Condition()
        self._closed = False

    def __repr__(self) -> str:
        return f"<TransportPool {len(self._all)}/{self._size} sessions>"

    def invoke(
        self, request: Request, *, doing: str, vm: str | None = None, deadline: Deadline | None = None
    ) -> list[Row]:
        """Run the request on a session no other call is using (see :meth:`Transport.invoke`)."""
        transport = self._take(deadline if deadline is not None else Deadline.current(), vm)
        try:
            return transport.invoke(request, doing=doing, vm=vm, deadline=deadline)
        finally:
            with self._changed:
                self._idle.append(transport)
                self._changed.notify()

    def _take(self, deadline: Deadline, vm: str | None) -> Transport:
        with self._changed:
            while True:
                if self._closed:
                    raise ConnectionError("the connection is closed", host=self._host)
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self._size:
                    transport = self._factory()
                    self._all.append(transport)
                    return transport
                if deadline.expired:
                    raise TimeoutError(
                        f"timed out after {deadline.timeout:g}s waiting for one of the connection's {self._size} "
                        "sessions (all busy); nothing was sent to the host",
                        host=self._host,
                        vm=vm,
                    )
                remaining = deadline.remaining()
                self._changed.wait(None if remaining == float("inf") else remaining)

    def close(self) -> None:
        """Close every session; safe to call twice."""
        with self._changed:
            self._closed = True
            transports = list(self._all)
            self._changed.notify_all()
        for transport in transports:
            transport.close()


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(value: object) -> datetime | None:
    """Parse a .NET DateTime as either transport renders it (ISO 8601, or ``/Date(ms)/`` from ConvertTo-Json)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    match = _MS_DATE.match(value.strip())
    if match:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
