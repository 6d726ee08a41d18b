"""Reconnecting: the loopback host restarts (a real process restart, or its listener in-process), over both
transports; the call that finds the session gone raises ConnectionLostError unless nothing ran, and the next call
opens a new session; an event stream outlives the restart, reports the gap and re-reads the VMs."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import polyvisor
from polyvisor import Event, EventKind, PowerState
from polyvisor.errors import ConnectionError, ConnectionLostError

if TYPE_CHECKING:
    from polyvisor_hyperv_loopback.launch import HostProcess as LaunchedHost

pytestmark = pytest.mark.loopback

Connect = Callable[..., polyvisor.Connection]
PASSWORD_ENV = "POLYVISOR_TEST_HYPERV_HOST_PASSWORD"


class HostProcess:
    """``python -m polyvisor_hyperv_loopback`` in a process of its own, restartable on the same port and state dir."""

    def __init__(self, state_dir: Path, username: str, password: str) -> None:
        self.state_dir = state_dir
        self.username = username
        self._password = password
        self.port = 0
        self._process: LaunchedHost | None = None

    def start(self) -> None:
        from polyvisor_hyperv_loopback.launch import start_host

        options = ["--username", self.username, "--http-port", str(self.port), "--password-env", PASSWORD_ENV]
        self._process = start_host(
            [*options, "--state-dir", str(self.state_dir)],
            ready_file=self.state_dir / "ready.json",
            env={**os.environ, PASSWORD_ENV: self._password},
        )
        self.port = self._process.ready["endpoints"][0]["port"]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def uri(self, transport: str) -> str:
        return f"hyperv://{self.username}@127.0.0.1:{self.port}/?transport={transport}&scheme=http"


@pytest.fixture
def host_process(tmp_path: Path, username: str, password: str) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path, username, password)
    host.start()
    try:
        yield host
    finally:
        host.stop()


def test_a_restarted_host_process_is_reconnected_to(
    host_process: HostProcess, transport: str, connect: Connect
) -> None:
    conn = connect(host_process.uri(transport))
    backend = conn.backend
    assert conn.host_info().hypervisor == "hyperv"  # the session is warm
    host_process.stop()
    # The call that finds the session gone says so; while the host stays down, it cannot be reached.
    with pytest.raises(ConnectionLostError):
        backend.host_info()
    with pytest.raises(ConnectionError) as down:
        backend.host_info()
    assert not isinstance(down.value, ConnectionLostError)
    host_process.start()
    # The next call opens a new session on the restarted host.
    assert conn.host_info().hypervisor == "hyperv"
    assert conn.list() == []  # the loopback host keeps its Hyper-V state in memory only


def test_a_host_restarted_under_a_warm_session_needs_no_error(
    host_process: HostProcess, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(host_process.uri(transport))
    assert conn.list() == []
    host_process.stop()
    host_process.start()
    # The restarted host refuses the old session's first request, before anything runs: retried transparently,
    # for changes too.
    vm = conn.create({"name": vm_name})
    assert vm.start().state is PowerState.RUNNING


def test_a_connection_dropped_during_a_verb_is_reported_and_the_next_call_reconnects(
    loopback_private: Any,
    uri_for: Callable[..., str],
    transport: str,
    connect: Connect,
    vm_name: str,
    username: str,
    password: str,
) -> None:
    from polyvisor_hyperv_loopback import LoopbackHost

    conn = connect(uri_for(loopback_private, transport))
    host = loopback_private.engine.host
    vm = conn.create({"name": vm_name, "labels": {"polyvisor.test/guest": "ignore-shutdown"}})
    vm.start()
    failure: list[BaseException] = []

    def shut_down() -> None:
        try:
            vm.shutdown(timeout=30)
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=shut_down)
    worker.start()
    assert host.wait_until(lambda: host.power.shutdowns_waiting == 1, timeout=10), "Stop-VM is blocked on the guest"
    port = loopback_private.port
    loopback_private.stop()  # the listener goes away with every connection and session, mid-command
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(failure) == 1
    assert isinstance(failure[0], ConnectionLostError)
    assert failure[0].outcome_unknown  # a change: whether it took effect cannot be known
    # The same Hyper-V host serves again on the same port: the next call opens a new session.
    with LoopbackHost(username, password, port=port, engine=loopback_private.engine):
        assert vm.state() is PowerState.RUNNING
        assert host.get_vm(uuid.UUID(vm.uuid)).state == "Running"
        assert vm.stop().state is PowerState.STOPPED
        vm.delete()


def _next_event(events: polyvisor.EventStream, timeout: float) -> Event:
    event = events.get(timeout=timeout)
    assert event is not None, f"no event within {timeout}s"
    return event


def test_a_watch_outlives_a_winrm_service_restart_and_re_reads_the_vms(
    loopback_private: Any,
    uri_for: Callable[..., str],
    transport: str,
    connect: Connect,
    vm_name: str,
    username: str,
    password: str,
) -> None:
    from polyvisor_hyperv_loopback import LoopbackHost

    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})
    host = loopback_private.engine.host
    with conn.watch() as events:
        port = loopback_private.port
        loopback_private.stop()  # WinRM goes away with every session; Hyper-V and its VMs stay
        stopped = time.time()
        host.power.start_vm(uuid.UUID(vm.uuid))  # meanwhile the VM starts: no watcher sees it happen
        assert events.get(timeout=2.0) is None, "the stream waits quietly while the host is away"
        with LoopbackHost(username, password, port=port, engine=loopback_private.engine):
            answering = time.monotonic()
            gap = _next_event(events, timeout=10)
            back = time.monotonic() - answering
            assert gap.kind is EventKind.GAP, gap
            assert gap.since is not None
            assert gap.until is not None
            assert stopped - 1.0 < gap.since.timestamp() < stopped + 1.0
            assert gap.until.timestamp() > stopped + 2.0
            assert back < 4.0, f"the stream took {back:.2f}s to come back once the host answered"
            event = _next_event(events, timeout=5)
            assert (event.kind, event.uuid, event.state, event.detail) == (
                EventKind.STATE,
                vm.uuid,
                PowerState.RUNNING,
                "re-read after a gap",
            )
            vm.stop()  # live events flow again, on the new watcher
            event = _next_event(events, timeout=5)
            assert (event.kind, event.uuid, event.state) == (EventKind.STATE, vm.uuid, PowerState.STOPPED)
            assert event.detail == "Off"
            vm.delete()


def test_a_watch_outlives_a_host_process_restart(
    host_process: HostProcess, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(host_process.uri(transport))
    vm = conn.create({"name": vm_name})
    with conn.watch() as events:
        host_process.stop()
        assert events.get(timeout=1.5) is None, "the stream waits quietly while the host is away"
        host_process.start()
        gap = _next_event(events, timeout=10)
        assert gap.kind is EventKind.GAP, gap
        # The loopback host keeps its Hyper-V state in memory only: after its restart the VM is gone.
        event = _next_event(events, timeout=5)
        assert (event.kind, event.uuid, event.detail) == (EventKind.UNDEFINED, vm.uuid, "re-read after a gap")
        again = conn.create({"name": vm_name})
        event = _next_event(events, timeout=5)
        assert (event.kind, event.uuid) == (EventKind.DEFINED, again.uuid)


def test_a_watch_fails_once_its_reconnect_window_is_over(
    loopback_private: Any, uri_for: Callable[..., str], transport: str, connect: Connect
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    with conn.watch(reconnect_within=2) as events:
        loopback_private.stop()
        began = time.monotonic()
        with pytest.raises(ConnectionLostError, match="could not reconnect within 2 s"):
            events.get(timeout=10)
        took = time.monotonic() - began
        assert 1.9 < took < 3.5, f"failed {took:.2f}s into the outage for a 2 s window"
