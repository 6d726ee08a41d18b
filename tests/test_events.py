"""Event streams end loudly: a failed subscription raises from iteration, a recovered poll reports a gap.

Reconnect windows and the re-read after a gap: tests/test_events_resume.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from polyvisor import Connection, Event, EventKind, Feature
from polyvisor.backend import Credentials, EventSink, Subscription
from polyvisor.errors import BackendError, ConnectionLostError
from polyvisor.model import VMInfo
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


class NativeFailing(MemoryBackend):
    """Native events whose subscription the test can fail, as a backend does when its link cannot come back."""

    sinks: list[EventSink]
    subscribed: threading.Event

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.sinks = []
        self.subscribed = threading.Event()

    def subscribe(self, sink: EventSink) -> Subscription:
        self.sinks.append(sink)
        self.subscribed.set()
        return super().subscribe(sink)


class PolledFailing(MemoryBackend):
    """No native events (the core polls list_vms); the test makes listings fail."""

    failures = 0
    """How many listings fail from now on (-1: all of them)."""
    error: Exception = ConnectionLostError("the link dropped")

    def probe_features(self) -> frozenset[Feature]:
        return type(self).static_features() - {Feature.EVENTS}

    def list_vms(self) -> list[VMInfo]:
        if self.failures:
            self.failures -= 1 if self.failures > 0 else 0
            raise self.error
        return super().list_vms()


@pytest.fixture
def native(host_name: str) -> Iterator[tuple[Connection, NativeFailing]]:
    uri = URI.parse(f"memory:///{host_name}")
    backend = NativeFailing(uri, Credentials())
    with Connection(backend, uri) as conn:
        yield conn, backend


@pytest.fixture
def polled(host_name: str) -> Iterator[tuple[Connection, PolledFailing]]:
    uri = URI.parse(f"memory:///{host_name}")
    backend = PolledFailing(uri, Credentials())
    with Connection(backend, uri) as conn:
        assert not conn.supports(Feature.EVENTS)
        yield conn, backend


def test_a_failed_native_subscription_raises_from_iteration(native: tuple[Connection, NativeFailing]) -> None:
    conn, backend = native
    failed_at: list[float] = []

    def fail_soon() -> None:
        assert backend.subscribed.wait(5)
        conn.create({"name": "before"})  # an event first: the failure ends a stream that was working
        failed_at.append(time.monotonic())
        backend.sinks[-1].fail(ConnectionLostError("hypervisor gone for good", host="h"))

    with conn.watch(reconnect_within=0) as stream:  # a window of 0: fail as the backend does (see test_resume)
        thread = threading.Thread(target=fail_soon)
        thread.start()
        seen: list[Event] = []
        with pytest.raises(ConnectionLostError, match="gone for good"):
            seen.extend(stream)  # iteration is what is tested
        raised_at = time.monotonic()
        thread.join()
    assert [event.name for event in seen] == ["before"]
    assert raised_at - failed_at[0] < 1.0
    assert stream.get(timeout=0) is None, "a failed stream is closed"


def test_a_failed_native_subscription_raises_from_get(native: tuple[Connection, NativeFailing]) -> None:
    conn, backend = native
    with conn.watch() as stream:
        backend.sinks[-1].fail(BackendError("event loop died"))
        with pytest.raises(BackendError, match="event loop died"):
            stream.get(timeout=1)


def test_a_polled_stream_whose_listing_keeps_failing_raises(polled: tuple[Connection, PolledFailing]) -> None:
    conn, backend = polled
    with conn.watch(reconnect_within=0) as stream:
        backend.failures = -1
        started = time.monotonic()
        with pytest.raises(ConnectionLostError, match="the link dropped"):
            for _ in stream:
                pass
        assert time.monotonic() - started < 1.6


def test_a_polled_stream_fails_at_once_on_an_error_that_is_not_a_dropped_link(
    polled: tuple[Connection, PolledFailing],
) -> None:
    conn, backend = polled
    backend.error = BackendError("permission denied")
    with conn.watch() as stream:
        backend.failures = -1
        started = time.monotonic()
        with pytest.raises(BackendError, match="permission denied"):
            stream.get(timeout=5)
        assert time.monotonic() - started < 1.0


def test_a_poll_that_fails_once_and_recovers_reports_a_gap(polled: tuple[Connection, PolledFailing]) -> None:
    conn, backend = polled
    with conn.watch() as stream:
        backend.failures = 1
        event = stream.get(timeout=3)
        assert event is not None
        assert event.kind is EventKind.GAP
        assert "the link dropped" in event.detail
        assert backend.failures == 0
        conn.create({"name": "after"})
        event = stream.get(timeout=3)
        assert event is not None
        assert (event.kind, event.name) == (EventKind.DEFINED, "after"), "the stream goes on after a gap"
