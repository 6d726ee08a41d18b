"""Lifecycle events: :class:`EventStream` for the reader, :class:`PollingWatcher` for backends without native ones.

:func:`subscribe` is where a subscription begins: the backend's own events when it declares
:attr:`~polyvisor.model.Feature.EVENTS`, else a poller that turns successive listings into events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Self

from polyvisor.backend import EventSink, Subscription
from polyvisor.calls import read
from polyvisor.errors import ConnectionLostError, PolyvisorError
from polyvisor.model import Event, EventKind, Feature, VMInfo

if TYPE_CHECKING:
    from polyvisor.connection import Connection

__all__ = ["EventStream", "PollingWatcher", "subscribe"]


def subscribe(connection: Connection, sink: EventSink) -> Subscription:
    """Deliver the connection's lifecycle events into ``sink``: natively where the backend has events, else by
    polling its listings; return the call that ends the subscription."""
    if connection.supports(Feature.EVENTS):
        return connection.backend.subscribe(sink)
    return PollingWatcher(connection, sink).start()


class EventStream:
    """An iterator of :class:`~polyvisor.model.Event`; a context manager that unsubscribes on exit.

    Iteration ends once the stream is closed, also when another thread closes it. If the backend reports that
    the subscription failed (the connection died and did not come back), iteration raises that error.
    """

    def __init__(self, connection: Connection) -> None:
        self._sink = EventSink()
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = subscribe(connection, self._sink)

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
