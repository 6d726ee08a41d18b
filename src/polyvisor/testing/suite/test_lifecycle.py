"""The lifecycle group: one VM through create, start, pause and resume, save and restore, snapshot, shutdown and
delete, the cases in that order.

The VM is made once for the module and shared by its cases, so a real guest (an emulated architecture under TCG,
say) boots a few times rather than once per case. Each case first brings the VM where it needs it (``ensure``), so
any one of them also runs alone. What the VM cannot do is skipped on its declared capabilities
(:meth:`polyvisor.VM.capabilities`, which a backend narrows per VM: per architecture, for one), with the reason.
Run the group alone with ``--polyvisor-area lifecycle``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polyvisor import VM, Connection, Feature, PowerState, UnsupportedError
from polyvisor.testing.fixtures import SpecFactory, remove_vm, unique_name
from polyvisor.testing.suite._support import lacks_graceful_shutdown, require

BOOT_TIMEOUT = 180.0
"""Starting and restoring an emulated guest under TCG on a loaded two-core host."""


@pytest.fixture(scope="module")
def lifecycle_vm(polyvisor_connection: Connection, polyvisor_spec: SpecFactory) -> Iterator[VM]:
    """The group's one VM, made by the first case that asks for it and removed after the last."""
    vm = polyvisor_connection.create(polyvisor_spec(unique_name("life")))
    yield vm
    error = remove_vm(polyvisor_connection, vm)
    if error is not None:
        pytest.fail(f"cleanup of {vm.seen_name} failed: {error}")


def _running(vm: VM) -> None:
    assert vm.ensure("running", timeout=BOOT_TIMEOUT).state is PowerState.RUNNING


def test_create_makes_a_stopped_vm(polyvisor_connection: Connection, lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    assert polyvisor_connection.exists(vm.uuid)
    assert polyvisor_connection.vm(vm.seen_name).uuid == vm.uuid
    if vm.state() is PowerState.STOPPED:  # a case run before this one may have started it
        assert not vm.info().has_saved_state


def test_start_runs_it(lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    vm.ensure("stopped", force=True, timeout=60)
    assert vm.start(timeout=BOOT_TIMEOUT).state is PowerState.RUNNING
    assert vm.state() is PowerState.RUNNING


def test_pause_and_resume(lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    require(vm, Feature.PAUSE)
    _running(vm)
    assert vm.pause(timeout=60).state is PowerState.PAUSED
    assert vm.state() is PowerState.PAUSED
    assert vm.resume(timeout=60).state is PowerState.RUNNING
    assert vm.state() is PowerState.RUNNING


def test_save_and_restore(lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    require(vm, Feature.SAVE)
    _running(vm)
    assert vm.save(timeout=BOOT_TIMEOUT).state is PowerState.SAVED
    assert vm.info().has_saved_state
    assert vm.start(timeout=BOOT_TIMEOUT).state is PowerState.RUNNING, "start() restores the saved state"
    assert not vm.info().has_saved_state


def test_snapshot_and_revert(lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    require(vm, Feature.SNAPSHOTS)
    _running(vm)
    memory = vm.capabilities().supports(Feature.SNAPSHOT_MEMORY)
    name = unique_name("snap")
    snap = vm.snapshot(name, memory=memory)
    try:
        assert snap.state is PowerState.RUNNING
        assert snap.has_memory is memory
        assert vm.state() is PowerState.RUNNING, "taking a snapshot leaves the VM running"
        if memory:
            vm.stop(timeout=60)
            reverted = vm.revert(name)
            assert reverted.state in (PowerState.RUNNING, PowerState.PAUSED), reverted
            if reverted.state is PowerState.PAUSED:
                vm.resume(timeout=60)
        else:
            assert vm.revert(name).state is PowerState.STOPPED, "a snapshot without memory reverts to stopped"
        assert [s.name for s in vm.snapshots()] == [name]
    finally:
        vm.delete_snapshot(name)
    assert len(vm.snapshots()) == 0


def test_shutdown_stops_the_guest(polyvisor_connection: Connection, lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    _running(vm)
    lacking = lacks_graceful_shutdown(polyvisor_connection, vm.capabilities().features)
    if lacking:
        # Declared, so refused at once with the reason, not waited out until the timeout.
        with pytest.raises(UnsupportedError) as refused:
            vm.shutdown(timeout=BOOT_TIMEOUT)
        assert refused.value.feature in lacking
        assert vm.state() is PowerState.RUNNING
        pytest.skip(f"capability not declared: {', '.join(f.value for f in lacking)} ({refused.value.message})")
    # A guest still booting may miss the first request; the core repeats it until the guest reacts.
    assert vm.shutdown(timeout=BOOT_TIMEOUT).state is PowerState.STOPPED
    assert vm.state() is PowerState.STOPPED


def test_delete_removes_it(polyvisor_connection: Connection, lifecycle_vm: VM) -> None:
    vm = lifecycle_vm
    vm.ensure("stopped", force=True, timeout=60)
    vm.delete(storage=polyvisor_connection.supports(Feature.DELETE_STORAGE))
    assert not polyvisor_connection.exists(vm.uuid)
