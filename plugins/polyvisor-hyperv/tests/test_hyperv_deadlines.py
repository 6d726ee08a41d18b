"""Deadlines reach the host: a verb that outlives its timeout is stopped there, over both transports."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import TimeoutError, UnsupportedError

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]
IGNORE_SHUTDOWN = {"polyvisor.test/guest": "ignore-shutdown"}


def test_shutdown_ignored_by_the_guest_times_out_and_the_connection_stays_usable(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    host = loopback_private.engine.host
    # Only the API: the test-host hook reads this label and gives the VM a guest that ignores shutdown requests.
    vm = conn.create({"name": vm_name, "labels": IGNORE_SHUTDOWN})
    try:
        vm.start()
        connections, shells = loopback_private.connections_opened, loopback_private.open_shells
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            vm.shutdown(timeout=2)
        elapsed = time.monotonic() - started
        assert vm_name in str(info.value), "the error names the VM"
        assert 1.5 <= elapsed < 3, f"the contract: within timeout + 1 s, not much earlier ({elapsed:.2f}s)"
        # The blocked Stop-VM was stopped on the host (not left waiting for the guest) ...
        assert host.wait_until(lambda: host.power.shutdowns_waiting == 0, timeout=1)
        # ... the VM is as the hypervisor has it, never powered off ...
        assert vm.state() is PowerState.RUNNING
        # ... and the same session serves the next calls.
        assert conn.host_info().hypervisor == "hyperv"
        assert vm.stop().state is PowerState.STOPPED
        assert (loopback_private.connections_opened, loopback_private.open_shells) == (connections, shells)
    finally:
        vm.delete()


def test_the_guest_label_is_read_whenever_notes_change(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = loopback_http.engine.host
    vm = conn.create({"name": vm_name, "labels": {"team": "a"}})
    vm_id = uuid.UUID(vm.uuid)
    try:
        assert host.get_vm(vm_id).guest == "responsive"
        vm.update_labels(IGNORE_SHUTDOWN)
        assert host.get_vm(vm_id).guest == "ignore-shutdown"
        vm.update_labels({"team": "b"})  # other labels leave the guest alone
        assert host.get_vm(vm_id).guest == "ignore-shutdown"
        vm.update_labels(remove=list(IGNORE_SHUTDOWN))
        assert host.get_vm(vm_id).guest == "responsive"
    finally:
        vm.delete()


def test_a_deadline_that_has_passed_runs_nothing(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    from polyvisor.backend import Deadline

    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})
    try:
        before = loopback_private.requests_served
        with pytest.raises(TimeoutError):
            conn.backend.start(vm.uuid, Deadline(0))
        assert loopback_private.requests_served == before
        assert vm.state() is PowerState.STOPPED
    finally:
        vm.delete()


def test_shutdown_never_powers_off_a_guest_without_the_shutdown_service(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # Stop-VM -Force would answer Hyper-V's "turn it off instead?" with yes; the backend never passes -Force.
    vm = conn.create({"name": vm_name, "labels": {"polyvisor.test/guest": "no-shutdown-service"}})
    host = loopback_http.engine.host
    vm_id = uuid.UUID(vm.uuid)
    try:
        vm.start()
        started_at = host.get_vm(vm_id).started_at
        with pytest.raises(UnsupportedError, match="shutdown integration service") as info:
            vm.shutdown()
        assert info.value.feature is Feature.SHUTDOWN_AGENT
        with pytest.raises(UnsupportedError):
            vm.reboot()
        assert vm.state() is PowerState.RUNNING
        assert host.get_vm(vm_id).started_at == started_at, "never powered off"
        assert vm.stop().state is PowerState.STOPPED  # powering off is stop()'s job
    finally:
        vm.delete()
