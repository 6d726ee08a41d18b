"""Native events over both transports: one watcher pipeline per connection, on a session of its own, streaming VM
changes to every subscription; gaps after a dropped session, failure when the host is gone, and cancel/close
stopping the watcher on the host."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import EventKind, Feature, PowerState
from polyvisor.errors import ConnectionLostError
from polyvisor.model import Event
from polyvisor.testing import eventually

Connect = Callable[..., polyvisor.Connection]


def _next_for(
    events: polyvisor.EventStream, uuid: str, kind: EventKind, timeout: float, state: PowerState | None = None
) -> tuple[Event, float]:
    """Return the first event of ``kind`` (into ``state``, if given) about ``uuid`` and when it arrived."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        event = events.get(timeout=left)
        if event is None:
            break
        seen.append(event)
        if event.uuid == uuid and event.kind is kind and state in (None, event.state):
            return event, time.monotonic()
    pytest.fail(f"no {kind.value} event for {uuid} within {timeout}s; saw {seen}")


def _drain(events: polyvisor.EventStream, until: float) -> None:
    while time.monotonic() < until:
        events.get(timeout=max(until - time.monotonic(), 0.01))


def test_the_backend_declares_native_events(conn: polyvisor.Connection) -> None:
    assert conn.supports(Feature.EVENTS)
    assert Feature.EVENTS in conn.capabilities.features


def test_a_state_change_reaches_the_watcher_within_two_seconds(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create({"name": vm_name})
    try:
        with conn.watch() as events:
            began = time.monotonic()
            conn.backend.start(vm.uuid, polyvisor.backend.Deadline(60))  # Start-VM returns once it runs
            verb_done = time.monotonic()
            event, arrived = _next_for(events, vm.uuid, EventKind.STATE, 10, PowerState.RUNNING)
            assert event.state is PowerState.RUNNING
            assert event.detail == "Running"
            assert event.name == vm_name
            assert arrived - verb_done < 2.0, f"the event came {arrived - verb_done:.2f}s after Start-VM returned"
            assert arrived - began < 2.0 + (verb_done - began)
            vm.stop()
            event, _ = _next_for(events, vm.uuid, EventKind.STATE, 5, PowerState.STOPPED)
            assert event.state is PowerState.STOPPED
            assert event.detail == "Off"
    finally:
        vm.delete()


def test_a_subscription_joining_a_running_watcher_sees_changes_from_its_own_start(
    conn: polyvisor.Connection, vm_name: str
) -> None:
    with conn.watch() as early:
        _drain(early, until=time.monotonic() + 0.3)  # the watcher is running, between two of its rounds
        vm = conn.create({"name": vm_name})
        try:
            # Subscribed right after the create, before the watcher's next round has seen the VM: for this
            # subscription the VM existed (stopped) already, so starting it is a state change, not a definition.
            with conn.watch() as late:
                conn.backend.start(vm.uuid, polyvisor.backend.Deadline(60))
                event, _ = _next_for(late, vm.uuid, EventKind.STATE, 5, PowerState.RUNNING)
                assert event.state is PowerState.RUNNING
            event, _ = _next_for(early, vm.uuid, EventKind.DEFINED, timeout=5)
        finally:
            vm.stop()
            vm.delete()


def test_defined_and_undefined_events(conn: polyvisor.Connection, vm_name: str) -> None:
    with conn.watch() as events:
        vm = conn.create({"name": vm_name})
        event, _ = _next_for(events, vm.uuid, EventKind.DEFINED, timeout=5)
        assert (event.name, event.state) == (vm_name, PowerState.STOPPED)
        vm.delete()
        event, _ = _next_for(events, vm.uuid, EventKind.UNDEFINED, timeout=5)
        assert event.name == vm_name


def test_subscriptions_share_one_watcher_on_a_session_of_its_own(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})  # the connection's own session
    assert loopback_private.open_shells == 1
    with conn.watch() as first, conn.watch() as second, conn.watch() as third:
        # one watcher for the three
        eventually(lambda: loopback_private.open_shells == 2, timeout=5, what="2 open shells")
        # Verbs keep running on the connection's session while the watcher streams.
        vm.start()
        for events in (first, second, third):
            event, _ = _next_for(events, vm.uuid, EventKind.STATE, 5, PowerState.RUNNING)
            assert event.state is PowerState.RUNNING
    assert loopback_private.open_shells == 2  # it lingers a moment for the next subscription


def test_cancelling_the_last_subscription_stops_the_watcher_on_the_host(
    loopback_private: Any,
    uri_for: Callable[..., str],
    transport: str,
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import polyvisor_hyperv.events

    monkeypatch.setattr(polyvisor_hyperv.events, "LINGER", 0.05)
    conn = connect(uri_for(loopback_private, transport))
    conn.list()
    with conn.watch():
        eventually(lambda: loopback_private.open_shells == 2, timeout=5, what="2 open shells")
    eventually(lambda: loopback_private.open_shells == 1, timeout=3, what="the watcher's shell to close")
    # A new subscription starts a new watcher.
    with conn.watch():
        eventually(lambda: loopback_private.open_shells == 2, timeout=5, what="2 open shells")


def test_closing_the_connection_stops_the_watcher(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, password: str
) -> None:
    conn = polyvisor.connect(uri_for(loopback_private, transport), password=password)
    conn.list()
    events = conn.watch()
    eventually(lambda: loopback_private.open_shells == 2, timeout=5, what="2 open shells")
    began = time.monotonic()
    conn.close()
    assert time.monotonic() - began < 3
    assert events.get(timeout=0) is None
    assert loopback_private.open_shells == 0


def test_a_dropped_watcher_session_is_reopened_and_reported_as_a_gap(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    conn.list()
    with conn.watch() as events:
        vm = conn.create({"name": vm_name})
        _next_for(events, vm.uuid, EventKind.DEFINED, timeout=5)  # the watcher runs
        assert loopback_private.drop_shells() == 2  # as an idle timeout or a WinRM service restart would
        event, _ = _next_for(events, "", EventKind.GAP, timeout=3)
        assert "reopened" in event.detail
        vm.start()  # the connection's own session reconnects too
        event, _ = _next_for(events, vm.uuid, EventKind.STATE, 5, PowerState.RUNNING)
        assert event.state is PowerState.RUNNING


def test_a_watcher_whose_host_is_gone_fails_within_about_a_second_without_a_reconnect_window(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, connect: Connect
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    with conn.watch(reconnect_within=0) as events:
        loopback_private.stop()
        began = time.monotonic()
        with pytest.raises(ConnectionLostError):
            _drain(events, until=began + 10)
        assert time.monotonic() - began < 2.5


def test_a_watcher_that_cannot_start_fails_the_stream_but_never_a_verb(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    backend = conn.backend
    # The host refuses the watcher script (as a host that cannot run it would): it ends at once with an error.
    backend._events._script = "throw 'the watcher cannot run here'"  # type: ignore[attr-defined]
    vm = conn.create({"name": vm_name})
    # The core subscribes while a verb waits: the verb still completes (the wait falls back to polling).
    assert vm.start().state is PowerState.RUNNING
    with conn.watch() as events, pytest.raises(polyvisor.PolyvisorError, match="the watcher cannot run here"):
        events.get(timeout=10)
