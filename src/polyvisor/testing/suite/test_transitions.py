"""Verbs as the hypervisor carries them out: delete from every state, saved state, capability gates.

Which verbs the contract accepts from which state is the core's own table: the core's unit tests check that refused
and idempotent calls never reach a backend. Accepted verbs from every way of reaching a state: ``test_paths``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polyvisor import VM, Connection, Feature, InvalidStateError, NotFoundError, PowerState
from polyvisor.testing.suite._support import REACHABLE, bring_to, require

VMFactory = Callable[..., VM]


@pytest.mark.parametrize("state", list(REACHABLE), ids=lambda s: s.value)
def test_delete_from_state(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, state: PowerState
) -> None:
    require(polyvisor_connection, *REACHABLE[state])
    vm = polyvisor_vm_factory("del")
    bring_to(vm, state)
    conn = vm.connection
    storage = conn.supports(Feature.DELETE_STORAGE)
    if state is PowerState.STOPPED:
        vm.delete(storage=storage)
        assert not conn.exists(vm.uuid)
        vm.delete(storage=storage)  # already gone: nothing to do
        with pytest.raises(NotFoundError):
            conn.vm(vm.uuid)
        return
    with pytest.raises(InvalidStateError) as caught:
        vm.delete()
    assert caught.value.state is state
    assert conn.exists(vm.uuid)
    if state is PowerState.SAVED:
        vm.delete(force=True, storage=storage)
        assert not conn.exists(vm.uuid)


def test_stop_refuses_saved_vm_and_discard_keeps_it_stopped(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.SAVE)
    vm = polyvisor_vm_factory("sv")
    bring_to(vm, PowerState.SAVED)
    with pytest.raises(InvalidStateError, match="discard_saved_state"):
        vm.stop()
    assert vm.state() is PowerState.SAVED
    assert vm.discard_saved_state().state is PowerState.STOPPED
    assert vm.start().state is PowerState.RUNNING


def test_start_from_saved_restores(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.SAVE)
    vm = polyvisor_vm_factory("rs")
    bring_to(vm, PowerState.SAVED)
    assert vm.info().has_saved_state
    assert vm.start().state is PowerState.RUNNING
    assert not vm.info().has_saved_state


def test_status_carries_raw_state(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("raw")
    status = vm.status()
    assert status.state is PowerState.STOPPED
    assert isinstance(status.raw_state, str)
    assert status.raw_state
    assert not status.raw_state.isdigit(), "raw states are names, not numbers"
    vm.start()
    running = vm.status()
    assert running.state is PowerState.RUNNING
    assert running.raw_state != status.raw_state
    assert not running.critical
