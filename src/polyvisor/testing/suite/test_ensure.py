"""Desired state: ensure() reaches each target from each settled state, acting only when needed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polyvisor import VM, Connection, PowerState
from polyvisor.testing.suite._support import REACHABLE, bring_to, require

VMFactory = Callable[..., VM]


@pytest.mark.parametrize("target", list(REACHABLE), ids=lambda s: s.value)
@pytest.mark.parametrize("start", list(REACHABLE), ids=lambda s: s.value)
def test_ensure(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, start: PowerState, target: PowerState
) -> None:
    require(polyvisor_connection, *REACHABLE[start], *REACHABLE[target])
    vm = polyvisor_vm_factory("en")
    bring_to(vm, start)
    require(vm, *REACHABLE[target])
    steps: list[str] = []
    status = vm.ensure(target, timeout=120, force=True, progress=steps.append)
    assert status.state is target
    assert vm.state() is target
    if start is target:
        assert steps == [], "ensure must not act when the VM is already in the target state"
    else:
        assert steps, "ensure must report the verbs it ran"


def test_ensure_is_idempotent(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("eni")
    vm.ensure(PowerState.RUNNING)
    steps: list[str] = []
    vm.ensure(PowerState.RUNNING, progress=steps.append)
    assert steps == []


def test_ensure_without_force_shuts_down_gracefully(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("eng")
    bring_to(vm, PowerState.RUNNING)
    steps: list[str] = []
    vm.ensure(PowerState.STOPPED, progress=steps.append)
    assert [s.split()[0] for s in steps] == ["shutdown"]
    assert vm.state() is PowerState.STOPPED


def test_ensure_with_force_discards_saved_memory(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("ens")
    bring_to(vm, PowerState.SAVED)
    steps: list[str] = []
    vm.ensure(PowerState.STOPPED, force=True, progress=steps.append)
    assert [s.split()[0] for s in steps] == ["discard_saved_state"]
    assert vm.state() is PowerState.STOPPED
