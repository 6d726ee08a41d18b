"""Event streams across outages: they keep trying to reconnect for their window, report the gap with its bounds,
re-read every VM so no transition goes unreported, and fail with ConnectionLostError only once the window is over.

The outages here are modelled on ``memory://`` (a backend that fails its subscriptions and refuses listings while
"down"); the real ones, a libvirtd and a Hyper-V host restarted under a stream, are in the backends' tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import polyvisor.aio
from polyvisor import Connection, Event, EventKind, EventStream, PowerState
from polyvisor.backend import Credentials, Deadline, EventSink, Subscription
from polyvisor.errors import AuthenticationError, ConnectionError, ConnectionLostError, ValidationError
from polyvisor.model import VMInfo
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


class Outages(MemoryBackend):
    """Native events; :meth:`go_down` ends every subscription as a dead link does, and until :meth:`come_back`
    listings and subscriptions fail (changes still work: they stand for what happens on the host meanwhile)."""

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.down: Exception | None = None
        self.listings = 0
        self.refused = 0  # listings and subscriptions refused while down: the reconnect attempts
        self.sinks: list[EventSink] = []
        self.lock = threading.Lock()

    def list_vms(self) -> list[VMInfo]:
        with self.lock:
            self.listings += 1
            down = self.down
        if down is not None:
            self.refused += 1
            raise down
        return super().list_vms()

    def subscribe(self, sink: EventSink) -> Subscription:
        if self.down is not None:
            self.refused += 1
            raise self.down
        self.sinks.append(sink)
        return super().subscribe(sink)

    def go_down(self, error: Exception | None = None) -> None:
        with self.lock:
            self.down = error or ConnectionError("the host does not answer")
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            with self.host.lock:
                if sink in self.host.sinks:
                    self.host.sinks.remove(sink)
            sink.dropped()
            sink.fail(ConnectionLostError("the link dropped and did not come back"))

    def come_back(self) -> None:
        with self.lock:
            self.down = None


@pytest.fixture
def outages(host_name: str) -> Iterator[tuple[Connection, Outages]]:
    uri = URI.parse(f"memory:///{host_name}")
    backend = Outages(uri, Credentials())
    with Connection(backend, uri) as conn:
        yield conn, backend


def _take(stream: EventStream, count: int, timeout: float = 5.0) -> list[Event]:
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        event = stream.get(timeout=max(deadline - time.monotonic(), 0.0))
        assert event is not None, f"only {events} within {timeout}s"
        events.append(event)
    return events


def test_a_stream_comes_back_reports_the_gap_and_re_reads_every_vm(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    kept = conn.create({"name": "kept"})
    stopped = conn.create({"name": "stopped"})
    gone = conn.create({"name": "gone"})
    stopped.start()
    with conn.watch() as stream:
        backend.go_down()
        dropped_at = time.time()
        # Meanwhile on the host: none of this reaches the stream as it happens.
        stopped.stop()
        gone.delete()
        new = conn.create({"name": "new"})
        assert stream.get(timeout=0.5) is None, "nothing is reported while the host is down"
        backend.come_back()
        came_back_at = time.time()
        gap, *reread = _take(stream, 4)
        assert gap.kind is EventKind.GAP
        assert (gap.uuid, gap.name) == ("", "")
        assert "did not come back" in gap.detail
        assert "re-read" in gap.detail
        assert gap.since is not None
        assert gap.until is not None
        assert dropped_at - 0.5 < gap.since.timestamp() <= dropped_at + 0.1
        assert came_back_at <= gap.until.timestamp() < came_back_at + 1.0
        assert {(event.kind, event.name, event.state) for event in reread} == {
            (EventKind.STATE, "stopped", PowerState.STOPPED),
            (EventKind.UNDEFINED, "gone", None),
            (EventKind.DEFINED, "new", PowerState.STOPPED),
        }
        assert all(event.detail == "re-read after a gap" for event in reread)
        assert kept.uuid not in {event.uuid for event in reread}, "an unchanged VM is not reported"
        new.start()  # the stream delivers live events again, on its new subscription
        (event,) = _take(stream, 1)
        assert (event.kind, event.name, event.state) == (EventKind.STATE, "new", PowerState.RUNNING)
        assert event.detail != "re-read after a gap"


def test_it_retries_with_backoff_and_fails_once_the_window_is_over(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    with conn.watch(reconnect_within=1.5) as stream:
        backend.go_down()
        started = time.monotonic()
        with pytest.raises(ConnectionLostError) as caught:
            stream.get(timeout=10)
        took = time.monotonic() - started
    assert 1.4 < took < 2.0, f"failed after {took:.2f}s for a 1.5 s window"
    assert "could not reconnect within 1.5 s" in caught.value.message
    assert "the host does not answer" in caught.value.message
    attempts = backend.refused
    # 0.1, 0.2, 0.4, 0.8 s apart: five attempts fit in 1.5 s (a retry every 0.1 s would make fifteen).
    assert 4 <= attempts <= 6, attempts
    assert stream.get(timeout=0) is None, "a failed stream is closed"


def test_an_error_a_retry_cannot_mend_ends_the_stream_at_once(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    with conn.watch() as stream:
        backend.go_down(AuthenticationError("the password was changed"))
        started = time.monotonic()
        with pytest.raises(AuthenticationError, match="password was changed"):
            stream.get(timeout=10)
        assert time.monotonic() - started < 1.0


def test_a_window_of_zero_fails_as_the_backend_does(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    with conn.watch(reconnect_within=0) as stream:
        backend.go_down()
        with pytest.raises(ConnectionLostError, match="did not come back"):
            stream.get(timeout=2)
        assert backend.listings == 1, "no reconnect attempt"


def test_a_window_of_zero_reports_a_host_it_cannot_reach_as_a_lost_link(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    with conn.watch(reconnect_within=0) as stream:
        # As a Hyper-V watcher does when the host goes away before the watcher's first round.
        backend.sinks[-1].fail(ConnectionError("cannot reach the host, connection refused", host="hv1"))
        with pytest.raises(ConnectionLostError, match="cannot reach the host") as caught:
            stream.get(timeout=2)
        assert caught.value.host == "hv1"
        assert backend.listings == 1, "no reconnect attempt"


def test_events_held_during_the_re_read_are_not_reported_twice(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    vm = conn.create({"name": "v"})
    with conn.watch() as stream:
        backend.go_down()
        vm.start()  # missed
        # The new subscription sees an event for a change the re-read reports as well: told once.
        subscribed = threading.Event()
        original = backend.subscribe

        def subscribe_then_change(sink: EventSink) -> Subscription:
            cancel = original(sink)
            subscribed.set()
            backend.pause(vm.uuid, Deadline(5))  # delivered while the stream re-reads
            return cancel

        backend.subscribe = subscribe_then_change  # type: ignore[method-assign]
        backend.come_back()
        gap, event = _take(stream, 2)
        assert subscribed.is_set()
        assert gap.kind is EventKind.GAP
        assert (event.kind, event.state) == (EventKind.STATE, PowerState.PAUSED)
        assert stream.get(timeout=0.5) is None, "the held event repeats what the re-read said"


def test_a_gap_the_backend_reports_is_re_read_too(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    vm = conn.create({"name": "v"})
    with conn.watch() as stream:
        (sink,) = backend.sinks
        with backend.host.lock:
            backend.host.sinks.remove(sink)  # the backend misses the start while it reconnects...
        vm.start()
        with backend.host.lock:
            backend.host.sinks.append(sink)
        sink.gap("the link dropped and was reopened")  # ...and says so once it is back
        gap, event = _take(stream, 2)
        assert gap.kind is EventKind.GAP
        assert gap.detail.startswith("the link dropped and was reopened")
        assert gap.since is not None
        assert gap.until is not None
        assert gap.since <= gap.until
        assert (event.kind, event.name, event.state, event.detail) == (
            EventKind.STATE,
            "v",
            PowerState.RUNNING,
            "re-read after a gap",
        )


@pytest.mark.parametrize("window", [-1, float("nan"), float("inf"), "60", True])
def test_a_bad_window_is_refused(outages: tuple[Connection, Outages], window: object) -> None:
    conn, _ = outages
    with pytest.raises(ValidationError, match="reconnect_within") as caught:
        conn.watch(reconnect_within=window)  # type: ignore[arg-type]
    assert caught.value.field == "reconnect_within"


def test_the_asyncio_stream_comes_back_with_a_gap_and_the_re_read(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages
    vm = conn.create({"name": "v"})

    async def main() -> list[Event]:
        aconn = polyvisor.aio.AsyncConnection(conn)
        async with aconn.events(reconnect_within=10) as stream:
            backend.go_down()
            vm.start()
            backend.come_back()
            first = await stream.get(timeout=5)
            second = await stream.get(timeout=5)
        return [event for event in (first, second) if event is not None]

    gap, event = asyncio.run(main())
    assert gap.kind is EventKind.GAP
    assert gap.since is not None
    assert (event.kind, event.state, event.detail) == (EventKind.STATE, PowerState.RUNNING, "re-read after a gap")


def test_a_gap_reaches_an_asyncio_stream(outages: tuple[Connection, Outages]) -> None:
    conn, backend = outages

    async def main() -> Event | None:
        aconn = polyvisor.aio.AsyncConnection(conn)
        async with aconn.events() as stream:
            backend.sinks[-1].gap("reopened")
            return await stream.get(timeout=5)

    event = asyncio.run(main())
    assert event is not None
    assert event.kind is EventKind.GAP
    assert event.detail.startswith("reopened")


def test_a_subscription_failing_to_reach_its_host_is_retried_like_a_lost_link(
    outages: tuple[Connection, Outages],
) -> None:
    conn, backend = outages
    with conn.watch() as stream:
        # As a Hyper-V watcher does when the host goes away before the watcher's first round.
        backend.sinks[-1].fail(ConnectionError("cannot reach the host"))
        event = stream.get(timeout=5)
        assert event is not None
        assert event.kind is EventKind.GAP
        assert event.detail.startswith("cannot reach the host")
