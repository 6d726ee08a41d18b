"""wait_for, timeouts and the event stream."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable

import pytest

from polyvisor import VM, EventKind, PowerState, TimeoutError

VMFactory = Callable[..., VM]


def test_wait_for_current_state_returns_at_once(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("wt")
    assert vm.wait_for(PowerState.STOPPED, timeout=0).state is PowerState.STOPPED


def test_wait_for_times_out_leaving_vm_as_is(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("wto")
    began = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        vm.wait_for(PowerState.RUNNING, timeout=0.3)
    elapsed = time.monotonic() - began
    assert isinstance(caught.value, builtins.TimeoutError)
    assert 0.3 <= elapsed < 10
    assert "stopped" in str(caught.value)
    assert vm.state() is PowerState.STOPPED


def test_start_without_waiting_then_wait_for(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("wtn")
    vm.start(wait=False)
    assert vm.wait_for("running", timeout=60).state is PowerState.RUNNING


def test_watch_reports_state_changes(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("ev")
    with vm.connection.watch() as events:
        vm.start()
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            event = events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event is None:
                break
            seen.append(event)
            if event.uuid == vm.uuid and event.kind is EventKind.STATE and event.state is PowerState.RUNNING:
                break
        mine = [e for e in seen if e.uuid == vm.uuid]
        assert any(e.kind is EventKind.STATE and e.state is PowerState.RUNNING for e in mine), seen
