"""Lifecycle events: :class:`EventStream` for the reader, :class:`PollingWatcher` for backends without native ones,
and :class:`ResumingSubscription`, which carries a stream across outages of the host.

:func:`subscribe` is where a backend subscription begins: the backend's own events when it declares
:attr:`~polyvisor.model.Feature.EVENTS`, else a poller that turns successive listings into events. A stream
(:meth:`polyvisor.Connection.watch`, :meth:`polyvisor.aio.AsyncConnection.events`) wraps that subscription in a
:class:`ResumingSubscription`: when the backend ends it because the link is gone, it keeps trying to come back
for the stream's reconnect window, then reports the gap and re-reads every VM, so no transition goes unreported.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from polyvisor.backend import EventSink, Subscription
from polyvisor.calls import read
from polyvisor.errors import (
    AuthenticationError,
    ConnectionError,
    ConnectionLostError,
    PolyvisorError,
    TimeoutError,
    ValidationError,
)
from polyvisor.model import Event, EventKind, Feature, PowerState, VMInfo

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["RECONNECT_WITHIN", "EventStream", "PollingWatcher", "ResumingSubscription", "subscribe"]

log = logging.getLogger("polyvisor.events")

RECONNECT_WITHIN = 60.0
"""Seconds a stream keeps trying to reconnect after its link dropped, by default (a daemon restarting during a
package upgrade is back within seconds; a first start on a new host takes about 40 s)."""
FIRST_RETRY = 0.1
"""Seconds before the first reconnect attempt; each failed attempt doubles the wait, up to :data:`MAX_RETRY`."""
MAX_RETRY = 2.0
"""The longest wait between two reconnect attempts: a host that is back is found within this."""


def subscribe(connection: Connection, sink: EventSink) -> Subscription:
    """Deliver the connection's lifecycle events into ``sink``: natively where the backend has events, else by
    polling its listings; return the call that ends the subscription."""
    if connection.supports(Feature.EVENTS):
        return connection.backend.subscribe(sink)
    return PollingWatcher(connection, sink).start()


def check_reconnect_within(seconds: float) -> float:
    """Return ``seconds`` as a reconnect window, or raise ValidationError saying what a window must be."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise ValidationError(
            f"reconnect_within must be a number of seconds, 0 or more (0: fail at once); got {seconds!r}",
            field="reconnect_within",
        )
    return float(seconds)


class EventStream:
    """An iterator of :class:`~polyvisor.model.Event`; a context manager that unsubscribes on exit.

    Iteration ends once the stream is closed, also when another thread closes it. When the link drops, the stream
    keeps trying to reconnect for ``reconnect_within`` seconds; once back it yields a ``gap`` event and re-reads
    every VM (:class:`~polyvisor.events.ResumingSubscription`). If it cannot come back in time, or the subscription
    fails for another reason, iteration raises that error.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        reconnect_within: float = RECONNECT_WITHIN,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        within = check_reconnect_within(reconnect_within)
        self._sink = EventSink()
        self._lock = threading.Lock()
        self._on_close = on_close
        self._cancel: Callable[[], None] | None = ResumingSubscription(connection, self._sink, within).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def get(self, timeout: float | None = None) -> Event | None:
        """Return the next event; None after ``timeout`` seconds without one, or once the stream is closed.

        Raise the backend's error when the subscription failed.
        """
        if self._cancel is None:
            return None
        item = self._sink.take(timeout)
        if item is None:
            return None
        if item is _CLOSED:
            self._sink.put_marker(_CLOSED)  # wake every other reader too
            return None
        if isinstance(item, PolyvisorError):
            self._sink.put_marker(item)  # every reader learns it
            self.close()
            raise item
        assert isinstance(item, Event)
        return item

    def close(self) -> None:
        """Stop receiving events; a reader blocked in another thread returns."""
        with self._lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            try:
                cancel()
            finally:
                self._sink.put_marker(_CLOSED)
                if self._on_close is not None:
                    self._on_close()

    @property
    def closed(self) -> bool:
        """Whether the stream is closed (by :meth:`close`, its connection, or a failure it raised)."""
        return self._cancel is None


_CLOSED = object()


class PollingWatcher:
    """Turns successive listings into events, for backends without native events.

    A failed listing is tried again at the next poll (the backend reconnects); a second failure in a row ends the
    subscription with that error, and a recovery reports a gap.
    """

    poll_interval = 0.5
    retry_interval = 0.1

    def __init__(self, connection: Connection, sink: EventSink) -> None:
        self._connection = connection
        self._sink = sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="polyvisor-poll", daemon=True)
        self._seen: dict[str, VMInfo] = {}

    def start(self) -> Subscription:
        self._seen = {vm.uuid: vm for vm in read(self._connection, lambda b: b.list_vms())}
        self._thread.start()
        return self._cancel

    def _cancel(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failed: PolyvisorError | None = None
        # After a failure, try again soon: the backend reconnects on that call, and a dead connection must end the
        # stream within about a second.
        while not self._stop.wait(self.retry_interval if failed else self.poll_interval):
            try:
                backend = self._connection.backend
                now = {vm.uuid: vm for vm in backend.list_vms()}
            except PolyvisorError as error:
                if failed is not None or not isinstance(error, ConnectionLostError):
                    self._sink.fail(error)
                    return
                failed = error
                continue
            if failed is not None:
                self._sink.gap(f"the connection dropped and came back ({failed.message})")
                failed = None
            self._diff(now)

    def _diff(self, now: dict[str, VMInfo]) -> None:
        for uuid, vm in now.items():
            before = self._seen.get(uuid)
            if before is None:
                self._sink.emit(Event(EventKind.DEFINED, uuid, vm.name, vm.state))
            elif before.status != vm.status:
                self._sink.emit(Event(EventKind.STATE, uuid, vm.name, vm.state, vm.status.raw_state))
        for uuid, vm in self._seen.items():
            if uuid not in now:
                self._sink.emit(Event(EventKind.UNDEFINED, uuid, vm.name))
        self._seen = now


Seen = tuple[str, PowerState | None]
"""A VM as a stream last reported it: its name and state (None: an event that did not say, so unknown)."""

_RESYNC_DETAIL = "re-read after a gap"


def _now() -> datetime:
    return datetime.now(UTC)


class _Relay(EventSink):
    """The sink a backend subscription feeds on behalf of a :class:`ResumingSubscription`."""

    def __init__(self, owner: ResumingSubscription) -> None:
        super().__init__()
        self._owner = owner

    def emit(self, event: Event) -> None:
        if event.kind is EventKind.GAP:
            self._owner.backend_gap(event.detail)
        else:
            self._owner.backend_event(event)

    def dropped(self) -> None:
        self._owner.backend_dropped()

    def fail(self, error: PolyvisorError) -> None:
        self._owner.backend_failed(error)


class ResumingSubscription:
    """A subscription that outlives outages of its host, for an event stream.

    It keeps each VM as the stream last reported it (a listing taken at the start, then every event), and relays
    the backend's events to ``sink``. When the backend says the link dropped, with a gap (it reconnected by
    itself) or by failing the subscription with :class:`~polyvisor.errors.ConnectionLostError` or another
    :class:`~polyvisor.errors.ConnectionError` but an authentication error (it could not), a
    thread of its own takes over, for that outage only: it subscribes again if need be and lists the VMs, retrying
    with backoff (:data:`FIRST_RETRY` doubling up to :data:`MAX_RETRY`) for ``reconnect_within`` seconds from the
    moment the link dropped. Once a listing succeeds, ``sink`` gets, in this order:

    1. one ``gap`` event whose ``since`` and ``until`` bound the outage (events may have been missed in between);
    2. for each VM whose listed state differs from the one last reported, a ``defined``, ``undefined`` or
       ``state`` event with detail ``"re-read after a gap"``;
    3. the events the new subscription delivered meanwhile, minus those the re-read already reported.

    If no attempt succeeds within the window (or an attempt fails with an error a retry cannot mend, such as an
    authentication error), ``sink`` fails with that error, a ConnectionLostError saying how long it tried. A window
    of 0 fails at once, as the backend did.
    """

    def __init__(self, connection: Connection, sink: EventSink, reconnect_within: float) -> None:
        self._connection = connection
        self._sink = sink
        self._within = reconnect_within
        self._relay = _Relay(self)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._view: dict[str, Seen] = {}
        self._pending: list[Event] | None = None  # not None while re-reading: events held until the re-read is done
        self._down: tuple[float, datetime] | None = None  # when the link was found down (monotonic, UTC)
        self._heard = _now()  # the last moment the stream was known to be in step with the host
        self._detail = ""  # the backend's words for the current outage
        self._resubscribe = False
        self._outages = 0  # counts the backend's reports of a drop: a re-read older than the last one is redone
        self._worker: threading.Thread | None = None
        self._inner: Subscription | None = None

    def start(self) -> Subscription:
        """List the VMs, subscribe, and return the call that ends it all; raise if either fails."""
        self._view = {vm.uuid: (vm.name, vm.state) for vm in read(self._connection, lambda b: b.list_vms())}
        self._heard = _now()
        self._inner = subscribe(self._connection, self._relay)
        return self._cancel

    def _cancel(self) -> None:
        self._stop.set()
        with self._lock:
            inner, self._inner = self._inner, None
        if inner is not None:
            inner()

    # -- what the backend reports (on its threads) ----------------------------------------------------------------
    def backend_event(self, event: Event) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            if self._pending is not None:
                self._pending.append(event)
                return
            self._note(event)
            self._heard = _now()
            self._sink.emit(event)

    def backend_dropped(self) -> None:
        with self._lock:
            if self._down is None:
                self._down = (time.monotonic(), _now())

    def backend_gap(self, detail: str) -> None:
        with self._lock:
            self._detail = detail
            self._begin_recovery()

    def backend_failed(self, error: PolyvisorError) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            # A subscription that once worked and fails to reach its host lost its link, whatever the backend
            # called it (a Hyper-V watcher that had not finished its first round reports ConnectionError).
            lost_link = isinstance(error, ConnectionError) and not isinstance(error, AuthenticationError)
            if not lost_link or self._within <= 0:
                if lost_link and not isinstance(error, ConnectionLostError):
                    error = ConnectionLostError(error.message, host=error.host, vm=error.vm)
                self._stop.set()
                self._sink.fail(error)
                return
            log.info("the event stream on %s lost its link (%s); reconnecting", self._connection.host, error.message)
            self._detail = error.message
            self._resubscribe = True
            if self._down is None:
                self._down = (time.monotonic(), _now())
            self._begin_recovery()

    def _begin_recovery(self) -> None:
        """Hold events and start the recovery thread, unless it runs already (under the lock)."""
        if self._stop.is_set():
            return
        self._outages += 1
        if self._pending is None:
            self._pending = []
        if self._worker is None:
            self._worker = threading.Thread(target=self._recover, name="polyvisor-events-reconnect", daemon=True)
            self._worker.start()

    # -- the recovery thread ----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        delay = FIRST_RETRY
        while not self._stop.is_set():
            with self._lock:
                resubscribe, self._resubscribe = self._resubscribe, False
                old = self._inner if resubscribe else None
                outages = self._outages
            try:
                if resubscribe:
                    self._subscribe_again(old)
                listing = read(self._connection, lambda b: b.list_vms())
            except (ConnectionError, TimeoutError) as error:
                if self._connection.closed:
                    return  # closing the connection closed the stream
                if isinstance(error, AuthenticationError):
                    self._give_up(error)
                    return
                with self._lock:
                    self._resubscribe = self._resubscribe or resubscribe
                    if self._down is None:
                        self._down = (time.monotonic(), _now())
                    left = self._down[0] + self._within - time.monotonic()
                if left <= 0:
                    self._give_up(error)
                    return
                self._stop.wait(min(delay, left))
                delay = min(delay * 2, MAX_RETRY)
                continue
            except PolyvisorError as error:
                self._give_up(error)
                return
            if self._resync(listing, outages):
                return

    def _subscribe_again(self, old: Subscription | None) -> None:
        if old is not None:
            with contextlib.suppress(Exception):  # the backend ended it already; this only tidies up
                old()
        with self._lock:
            if self._inner is old:
                self._inner = None
        inner = subscribe(self._connection, self._relay)
        with self._lock:
            stopped = self._stop.is_set()
            if not stopped:
                self._inner = inner
        if stopped:
            inner()

    def _resync(self, listing: list[VMInfo], outages: int) -> bool:
        """Report the gap, the re-read and the held events; return False if the link dropped again meanwhile."""
        with self._lock:
            if self._stop.is_set():
                return True
            if self._outages != outages:
                return False  # reported again since this listing was asked for: list once more
            until = _now()
            since = self._down[1] if self._down is not None else self._heard
            down = f"down {time.monotonic() - self._down[0]:.1f} s; " if self._down is not None else ""
            detail = self._detail or "the connection dropped and was reopened"
            self._sink.emit(
                Event(
                    EventKind.GAP,
                    "",
                    "",
                    detail=f"{detail} ({down}the events that follow re-read every VM)",
                    since=since,
                    until=until,
                )
            )
            log.info("the event stream on %s is back (%s)", self._connection.host, down.rstrip("; ") or "a gap")
            now = {vm.uuid: vm for vm in listing}
            for uuid, vm in now.items():
                before = self._view.get(uuid)
                if before is None:
                    self._sink.emit(Event(EventKind.DEFINED, uuid, vm.name, vm.state, _RESYNC_DETAIL))
                elif before[1] is not vm.state:
                    self._sink.emit(Event(EventKind.STATE, uuid, vm.name, vm.state, _RESYNC_DETAIL))
            for uuid, (name, _) in self._view.items():
                if uuid not in now:
                    self._sink.emit(Event(EventKind.UNDEFINED, uuid, name, None, _RESYNC_DETAIL))
            self._view = {uuid: (vm.name, vm.state) for uuid, vm in now.items()}
            pending, self._pending = self._pending or [], None
            for event in pending:
                if not self._reported(event):
                    self._note(event)
                    self._sink.emit(event)
            self._down, self._detail, self._heard, self._worker = None, "", until, None
        return True

    def _reported(self, event: Event) -> bool:
        """Whether the re-read already told what this held event says (under the lock)."""
        seen = self._view.get(event.uuid)
        if event.kind is EventKind.DEFINED:
            return seen is not None
        if event.kind is EventKind.UNDEFINED:
            return seen is None
        return seen is not None and event.state is not None and seen[1] is event.state

    def _note(self, event: Event) -> None:
        if event.kind is EventKind.UNDEFINED:
            self._view.pop(event.uuid, None)
        elif event.kind in (EventKind.DEFINED, EventKind.STATE):
            self._view[event.uuid] = (event.name, event.state)

    def _give_up(self, error: PolyvisorError) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            since = self._down[1] if self._down is not None else self._heard
            inner, self._inner = self._inner, None
        if isinstance(error, ConnectionError | TimeoutError) and not isinstance(error, AuthenticationError):
            error = ConnectionLostError(
                f"the event stream lost its connection at {since:%H:%M:%S} UTC and could not reconnect within "
                f"{self._within:g} s ({error.message}); watch again once the host is back",
                host=self._connection.host,
            )
        log.warning("the event stream on %s ends: %s", self._connection.host, error.message)
        self._sink.fail(error)
        if inner is not None:
            with contextlib.suppress(Exception):
                inner()
