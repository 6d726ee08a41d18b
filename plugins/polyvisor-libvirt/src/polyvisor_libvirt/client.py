"""The client every part of the backend calls libvirt through: one connection, opened, noticed when it drops,
reopened, and the calls every part shares.

A :class:`LibvirtClient` owns the ``virConnect``, its close callback and its event registrations
(:mod:`.events`). The call that finds the connection dropped raises :class:`~polyvisor.errors.ConnectionLostError`;
the next call reopens it with the same URI and credentials and registers everything again. While subscriptions are
live it reconnects at once instead, and they get a gap (or fail, if libvirtd is not back within a second: an event
stream then keeps trying for its own reconnect window, :class:`polyvisor.events.ResumingSubscription`).

It also holds the helpers the backend's parts share: looking a domain up, reading its definition (through the
cache) and state, mapping errors, and running a long libvirt job under a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import libvirt

from polyvisor.backend import Credentials, Deadline
from polyvisor.errors import (
    AuthenticationError,
    ConnectionError,
    ConnectionLostError,
    NotFoundError,
    PolyvisorError,
    TimeoutError,
    ValidationError,
)
from polyvisor.model import PowerState, VMStatus, normalize_uuid
from polyvisor.uri import URI
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.domainxml import Definition
from polyvisor_libvirt.errors import map_libvirt_errors
from polyvisor_libvirt.eventloop import ensure_event_loop
from polyvisor_libvirt.events import DefinitionCache, Events
from polyvisor_libvirt.states import to_status
from polyvisor_libvirt.transports import explain

__all__ = ["LibvirtClient"]

log = logging.getLogger("polyvisor.libvirt")
_T = TypeVar("_T")

_ABORT_GRACE = 0.5  # seconds a timed-out call may take to end once its job is aborted
_RECOVER_WITHIN = 1.0  # seconds within which subscribers learn of a dropped connection (a gap, or a failure)
_RECOVER_POLL = 0.1


KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


def keepalive_of(options: Mapping[str, Any], uri: URI) -> tuple[int, int] | None:
    """The ``(interval, count)`` of libvirt's keepalive from the connection's options, checked; None: leave it.

    A remote peer that stops answering is declared dead after ``interval * (count + 1)`` seconds. Local sockets
    need none. Over libssh, libvirt's own default stays (5 s, 5 probes): changing it with ``setKeepAlive`` made
    libvirt 9.0 crash (a segmentation fault, 3 runs in 3, with a reply waiting for the next probe).
    """
    if uri.transport == "libssh":
        given = sorted({"keepalive_interval", "keepalive_count"} & set(options))
        if given:
            raise ValidationError(
                f"{', '.join(given)} cannot be set over qemu+libssh:// (changing the keepalive crashed libvirt over "
                "libssh); drop it to keep libvirt's default (a dead peer is noticed after 30 s), or use qemu+ssh://",
                field=given[0],
            )
        return None
    interval = options.get("keepalive_interval", KEEPALIVE_INTERVAL)
    count = options.get("keepalive_count", KEEPALIVE_COUNT)
    for name, value, least in (("keepalive_interval", interval, 1), ("keepalive_count", count, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValidationError(
                f"{name} must be a whole number >= {least} (got {value!r}); a peer that stops answering is "
                "declared dead after keepalive_interval * (keepalive_count + 1) seconds",
                field=name,
            )
    if uri.is_local and uri.transport in (None, "unix"):
        return None  # a local socket: libvirtd's own death closes it
    return interval, count


def _quiet(_ctx: object, _error: object) -> None:
    """Swallow libvirt's default stderr printing; every error is raised and mapped instead."""


class LibvirtClient:
    """One open libvirt connection (reopened after it drops), with its event registrations and cache."""

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        self.uri = uri
        self.host = uri.display_host
        self._closed = False
        # Why the connection dropped (None while it is up), and whether a caller has been told with a
        # ConnectionLostError: the call that finds it dropped raises, the next one reconnects.
        self._dropped: str | None = None
        self._announced = False
        self._generation = 0  # of the open connection; close callbacks of older ones are ignored
        # _state_lock guards _dropped/_announced and is never held across a libvirt call: libvirt runs the close
        # callback holding its own lock, which unregisterCloseCallback (in a reconnect) waits for.
        self._state_lock = threading.Lock()
        self._reconnect_lock = threading.RLock()
        self._credentials = credentials
        self.keepalive = keepalive_of(credentials.options, uri)
        self.cache = DefinitionCache()
        self.events = Events(self.cache)
        libvirt.registerErrorHandler(_quiet, None)
        ensure_event_loop()
        self.conn: libvirt.virConnect = self._open(uri, credentials)
        self._side: libvirt.virConnect | None = None
        self._side_lock = threading.Lock()
        try:
            self._register()
        except BaseException:
            self.close()  # no caller will ever close a client that was not returned
            raise

    def _open(self, uri: URI, credentials: Credentials) -> libvirt.virConnect:
        text = uri.raw or uri.render(hide_password=False)
        if uri.driver == "hyperv-libvirt":
            # polyvisor's own Hyper-V backend owns "hyperv://"; libvirt's Hyper-V driver is reached by this alias.
            text = "hyperv" + text[len("hyperv-libvirt") :]
        readonly = bool(credentials.options.get("readonly"))
        doing = f"connecting to {uri.render()}"
        try:
            with map_libvirt_errors(doing, host=self.host):
                if credentials.username is None and credentials.password is None:
                    return libvirt.openReadOnly(text) if readonly else libvirt.open(text)
                return libvirt.openAuth(text, self._auth(credentials), libvirt.VIR_CONNECT_RO if readonly else 0)
        except PolyvisorError as error:
            raise self._not_opened(error, doing) from error.__cause__

    def _not_opened(self, error: PolyvisorError, doing: str) -> ConnectionError:
        """The error for a connection that did not open, naming the fix of a remote transport's common failure."""
        cause = error.__cause__
        if isinstance(cause, libvirt.libvirtError):
            native = " ".join((cause.get_error_message() or str(cause)).split())  # ssh's stderr ends lines in CRLF
            explained = explain(native, self.uri)
            if explained is not None:
                kind = AuthenticationError if explained.authentication else ConnectionError
                return kind(f"{doing} failed: {native}; {explained.fix}", host=self.host)
        if isinstance(error, ConnectionError) and not isinstance(error, ConnectionLostError):
            return error
        # A socket that fails while opening never was a connection: nothing was lost. Whatever else libvirt says
        # while opening (a bad config file, an unknown driver), no connection exists.
        return ConnectionError(error.message, host=self.host)

    @staticmethod
    def _auth(credentials: Credentials) -> list[Any]:
        username = credentials.username
        password = credentials.password

        def answer(creds: list[list[Any]], _data: object) -> int:
            for cred in creds:
                if cred[0] == libvirt.VIR_CRED_AUTHNAME and username is not None:
                    cred[4] = username
                elif cred[0] == libvirt.VIR_CRED_PASSPHRASE and password is not None:
                    cred[4] = password.reveal()
                else:
                    return -1
            return 0

        return [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]

    def _register(self) -> None:
        """Register the close callback, keepalive and event callbacks on the (new) connection."""
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.registerCloseCallback(self._on_close, self._generation)
        if self.keepalive is not None:
            # Keepalive notices a dead peer, also over SSH or TLS to this machine's own address; drivers without
            # it (test, local embedded ones) refuse, which is fine.
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.setKeepAlive(*self.keepalive)
        self.events.register(self.conn)

    def _on_close(self, _conn: libvirt.virConnect, reason: int, generation: object) -> None:
        # On libvirt's event-loop thread: never block it (reopening a connection needs that loop).
        if generation != self._generation or self._closed:
            return
        reasons = {0: "an error", 1: "end of file", 2: "a keepalive timeout", 3: "a client request"}
        self._mark_dropped(reasons.get(reason, f"reason {reason}"))
        self.events.dropped()
        if self.events.watched:
            threading.Thread(
                target=self._recover_subscriptions, name="polyvisor-libvirt-reconnect", daemon=True
            ).start()

    def _mark_dropped(self, why: str, *, announced: bool = False) -> None:
        with self._state_lock:
            if self._dropped is None:
                self._dropped = why
                self._announced = False
            self._announced = self._announced or announced
        self.cache.clear()

    def _recover_subscriptions(self) -> None:
        """Reconnect at once for live subscriptions (they get a gap); fail them if that is not done within 1 s."""
        until = time.monotonic() + _RECOVER_WITHIN
        error: PolyvisorError | None = None
        while not self._closed:
            try:
                with self._reconnect_lock:
                    if self._dropped is not None:
                        self._reconnect()
                return
            except PolyvisorError as failed:
                error = failed
            if time.monotonic() + _RECOVER_POLL >= until:
                break
            time.sleep(_RECOVER_POLL)  # libvirtd is not back yet; nothing to wait on but the clock
        lost = ConnectionLostError(
            f"the libvirt connection to {self.uri} dropped and could not be reopened"
            + (f": {error.message}" if error else "")
            + "; watch again once libvirtd is back",
            host=self.host,
        )
        self.events.fail(lost)

    def _reconnect(self) -> None:
        """Reopen the connection (same URI and credentials) and re-register callbacks; tell subscribers."""
        old = self.conn
        with contextlib.suppress(libvirt.libvirtError):
            old.unregisterCloseCallback()
        self.events.deregister(old)
        with contextlib.suppress(libvirt.libvirtError):
            old.close()
        self.conn = self._open(self.uri, self._credentials)
        self._generation += 1
        self.cache.clear()
        self._register()
        with self._state_lock:
            why, self._dropped, self._announced = self._dropped, None, False
        log.info("reconnected to %s after the connection dropped (%s)", self.uri, why)
        self.events.gap(f"the libvirt connection dropped ({why}) and was reopened; events may have been missed")

    def live(self) -> libvirt.virConnect:
        """The open connection; a dropped one raises ConnectionLostError once, then is reopened."""
        if self._closed:
            raise ConnectionError("the connection is closed; open a new one", host=self.host)
        if self._dropped is None and not self._alive(self.conn):
            self._mark_dropped("libvirt reports it closed")
        with self._state_lock:
            dropped = self._dropped
            if dropped is not None and not self._announced:
                self._announced = True
                raise ConnectionLostError(
                    f"the libvirt connection to {self.uri} dropped ({dropped}); the next call reconnects",
                    host=self.host,
                )
        if dropped is not None:
            with self._reconnect_lock:
                if self._dropped is not None:  # not reopened by another thread meanwhile
                    self._reconnect()
        return self.conn

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())  # a local check of the client's socket, no round trip
        except libvirt.libvirtError:
            return False

    @contextlib.contextmanager
    def errors(
        self,
        doing: str,
        *,
        host: str | None = None,
        vm: str | None = None,
        state: Callable[[], PowerState] | None = None,
    ) -> Iterator[None]:
        """map_libvirt_errors, noting a connection that dropped under the call (the next call reopens it)."""
        try:
            with map_libvirt_errors(doing, host=host, vm=vm, state=state):
                yield
        except ConnectionLostError as error:
            self._mark_dropped(error.message, announced=True)
            raise

    def side_domain(self, uuid: str) -> libvirt.virDomain:
        """The domain on a second connection, for requests libvirt holds open for long (an agent shutdown).

        While one thread waits on a request libvirt does not answer (an agent shutdown is answered only once
        the guest is off), other calls on the same client connection can stall for seconds: measured here, a
        ``virDomainGetState`` on the shared connection took 5.0 s in 3 of 7 trials, and 0 of 12 on a second one.
        So such requests travel alone on a connection of their own, opened on first use and reopened if it dropped.
        """
        self.live()
        with self._side_lock:
            if self._side is None or not self._alive(self._side):
                if self._side is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        self._side.close()
                self._side = self._open(self.uri, self._credentials)
            side = self._side
        with self.errors("finding the VM", host=self.host, vm=uuid):
            return side.lookupByUUIDString(uuid)

    def close(self) -> None:
        """Deregister callbacks and close the connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._side is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._side.close()
        self.events.deregister(self.conn)
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()

    def domain(self, ref: str) -> libvirt.virDomain:
        conn = self.live()
        canonical = normalize_uuid(ref)
        try:
            if canonical is not None:
                try:
                    return conn.lookupByUUIDString(canonical)
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return conn.lookupByName(ref)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFoundError(
                    f"no VM with the name or UUID {ref!r}; list the VMs to see what exists",
                    host=self.host,
                    vm=ref,
                ) from error
            with self.errors("looking up the VM", host=self.host, vm=ref):
                raise

    def definition(self, dom: libvirt.virDomain, *, fresh: bool) -> Definition:
        uuid = dom.UUIDString()
        if not fresh:
            cached = self.cache.get(uuid)
            if cached is not None:
                return cached
        ticket = self.cache.ticket(uuid)
        with self.errors("reading the VM definition", host=self.host, vm=dom.name()):
            definition = domainxml.parse_definition(dom.XMLDesc(0))
        self.cache.put(definition, ticket)
        return definition

    def status(self, dom: libvirt.virDomain, name: str) -> VMStatus:
        with self.errors("reading the VM state", host=self.host, vm=name):
            state, reason = dom.state()
            managed = bool(dom.hasManagedSaveImage()) if state == libvirt.VIR_DOMAIN_SHUTOFF else False
        return to_status(state, reason, managed_save=managed)

    def state_of(self, dom: libvirt.virDomain) -> Callable[[], PowerState]:
        return lambda: self.status(dom, dom.name()).state

    @contextlib.contextmanager
    def acting(self, uuid: str, doing: str, deadline: Deadline | None = None) -> Iterator[libvirt.virDomain]:
        dom = self.domain(uuid)
        if deadline is not None:
            deadline.check(doing, host=self.host, vm=dom.name())
        with self.errors(doing, host=self.host, vm=dom.name(), state=self.state_of(dom)):
            yield dom

    def bounded(self, dom: libvirt.virDomain, deadline: Deadline, doing: str, call: Callable[[], _T]) -> _T:
        """Run a libvirt call that can block long (it runs a job) so that the deadline bounds it.

        The call runs in a worker thread; when the deadline passes first, the domain's job is aborted
        (``abortJob``, where the driver can) and TimeoutError raised, the VM left as libvirt has it. libvirt
        errors propagate unchanged (the caller maps them).
        """
        deadline.check(doing, host=self.host, vm=dom.name())
        if math.isinf(deadline.remaining()):
            return call()
        outcome: list[Any] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(call())
            except BaseException as error:  # handed to the waiting thread
                failure.append(error)

        worker = threading.Thread(target=run, name=f"polyvisor-libvirt-{doing}", daemon=True)
        worker.start()
        worker.join(deadline.remaining())
        if worker.is_alive():
            aborted = False
            with contextlib.suppress(libvirt.libvirtError):
                aborted = dom.abortJob() == 0
            worker.join(_ABORT_GRACE)  # an aborted job ends at once; do not overrun the deadline for long
            if worker.is_alive() or failure or not outcome:
                raise TimeoutError(
                    f"timed out after {deadline.timeout:g}s {doing}; "
                    + ("the job was aborted" if aborted else "libvirt could not abort it and may still finish it")
                    + ", and the VM was left as the hypervisor has it",
                    host=self.host,
                    vm=dom.name(),
                ) from (failure[0] if failure else None)
        if failure:
            raise failure[0]
        result: _T = outcome[0]
        return result

    def affect(self, dom: libvirt.virDomain) -> int:
        flags: int = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags
