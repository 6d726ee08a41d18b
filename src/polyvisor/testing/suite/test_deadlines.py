"""Deadlines: every call returns or raises TimeoutError within its timeout + 1 s, leaving the VM as it is.

These tests need a guest that ignores graceful shutdown (``--polyvisor-stubborn-spec``): a real guest with its
shutdown handling switched off, or a test host's guest told to ignore it.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from polyvisor import VM, PowerState, TimeoutError

VMFactory = Callable[..., VM]
GRACE = 1.0
"""What the contract allows past the timeout."""


@pytest.fixture
def stubborn(polyvisor_vm_factory: VMFactory, polyvisor_stubborn_overrides: Mapping[str, Any]) -> VM:
    """A running VM whose guest ignores graceful shutdown (the factory deletes it afterwards)."""
    vm = polyvisor_vm_factory("stub", **polyvisor_stubborn_overrides)
    vm.start(timeout=120)
    return vm


def _timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    began = time.monotonic()
    try:
        call()
    except builtins.TimeoutError as error:
        return error, time.monotonic() - began
    return None, time.monotonic() - began


@pytest.mark.parametrize("timeout", [2.0, 0.5])
def test_shutdown_of_a_guest_that_ignores_it(stubborn: VM, timeout: float) -> None:
    error, elapsed = _timed(lambda: stubborn.shutdown(timeout=timeout))
    assert isinstance(error, TimeoutError), "a guest that ignores shutdown must time out"
    assert elapsed < timeout + GRACE, f"shutdown(timeout={timeout}) took {elapsed:.2f}s"
    assert stubborn.state() is PowerState.RUNNING, "a graceful shutdown must never power the VM off"
    assert stubborn.seen_name in str(error)


def test_ensure_stopped_without_force_times_out_in_time(stubborn: VM) -> None:
    error, elapsed = _timed(lambda: stubborn.ensure("stopped", timeout=2))
    assert isinstance(error, TimeoutError)
    assert elapsed < 2 + GRACE, f"ensure took {elapsed:.2f}s"
    assert stubborn.state() is PowerState.RUNNING


def test_the_connection_works_right_after_a_timeout(stubborn: VM) -> None:
    error, _ = _timed(lambda: stubborn.shutdown(timeout=1))
    assert isinstance(error, TimeoutError)
    conn = stubborn.connection
    assert stubborn.uuid in {info.uuid for info in conn.list()}
    began = time.monotonic()
    assert stubborn.stop(timeout=60).state is PowerState.STOPPED, "power off still works"
    assert time.monotonic() - began < 60 + GRACE
    assert stubborn.start(timeout=120).state is PowerState.RUNNING


def test_wait_for_and_ensure_with_force_still_reach_their_state(stubborn: VM) -> None:
    error, elapsed = _timed(lambda: stubborn.wait_for("stopped", timeout=0.5))
    assert isinstance(error, TimeoutError)
    assert elapsed < 0.5 + GRACE
    assert stubborn.ensure("stopped", force=True, timeout=60).state is PowerState.STOPPED
