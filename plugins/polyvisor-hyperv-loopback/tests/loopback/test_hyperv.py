"""The in-memory Hyper-V host: state machine, concurrency, checkpoints, storage."""

from __future__ import annotations

import threading
import time

import pytest

from polyvisor_hyperv_loopback.hyperv import AlreadyInState, HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import HostError


@pytest.fixture
def host() -> HyperVHost:
    return HyperVHost(transition_delay=0)


def test_power_cycle_and_invalid_transitions(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("a", generation=2)
    assert vm.state == "Off"
    with pytest.raises(HostError) as info:
        host.power.save_vm(vm.id)
    assert info.value.error_id == "InvalidState"
    assert info.value.category == "InvalidOperation"
    assert host.power.start_vm(vm.id).state == "Running"
    with pytest.raises(AlreadyInState):
        host.power.start_vm(vm.id)
    assert host.power.suspend_vm(vm.id).state == "Paused"
    assert host.power.save_vm(vm.id).state == "Saved"
    assert host.power.remove_saved_state(vm.id).state == "Off"
    with pytest.raises(HostError):
        host.power.remove_saved_state(vm.id)


def test_transitional_state_visible_to_concurrent_reader() -> None:
    host = HyperVHost(transition_delay=0.3)
    vm = host.lifecycle.new_vm("slow")
    worker = threading.Thread(target=host.power.start_vm, args=(vm.id,))
    worker.start()
    seen = set()
    deadline = time.monotonic() + 5
    while worker.is_alive() and time.monotonic() < deadline:
        seen.add(host.get_vm(vm.id).state)
    worker.join()
    assert "Starting" in seen
    assert host.get_vm(vm.id).state == "Running"


def test_guest_ignoring_shutdown_blocks_until_turned_off() -> None:
    host = HyperVHost(transition_delay=0, guest_shutdown_timeout=10)
    vm = host.lifecycle.new_vm("stubborn")
    host.power.start_vm(vm.id)
    host.guests.set_guest_responds_to_shutdown(vm.id, False)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (host.power.shutdown_vm(vm.id), done.set()))
    worker.start()
    assert not done.wait(0.2)
    assert host.get_vm(vm.id).state == "Running"
    host.power.turn_off_vm(vm.id)
    assert done.wait(5)
    worker.join()


def test_guest_shutdown_timeout_and_cancel() -> None:
    host = HyperVHost(transition_delay=0, guest_shutdown_timeout=0.1)
    vm = host.lifecycle.new_vm("stubborn")
    host.power.start_vm(vm.id)
    host.guests.set_guest_responds_to_shutdown(vm.id, False)
    with pytest.raises(HostError) as info:
        host.power.shutdown_vm(vm.id)
    assert info.value.category == "OperationTimeout"
    cancel = threading.Event()
    cancel.set()
    host.guest_shutdown_timeout = 30
    with pytest.raises(HostError) as stopped:
        host.power.shutdown_vm(vm.id, cancel)
    assert stopped.value.error_id == "PipelineStopped"


def test_checkpoint_tree_restore_and_remove(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("c")
    host.lifecycle.set_vm(vm.id, checkpoint_type="Standard", notes="one")
    host.power.start_vm(vm.id)
    s1 = host.checkpoints.checkpoint_vm(vm.id, "s1")
    assert s1.captured_state == "Saved"  # standard checkpoint of a running VM holds memory
    host.power.turn_off_vm(vm.id)
    host.lifecycle.set_vm(vm.id, notes="two")
    s2 = host.checkpoints.checkpoint_vm(vm.id, "s2")
    assert s2.parent_id == s1.id
    assert s2.captured_state == "Off"
    restored = host.checkpoints.restore_snapshot(vm.id, s1.id)
    assert restored.state == "Saved"
    assert restored.config.notes == "one"
    assert restored.current_snapshot_id == s1.id
    host.checkpoints.remove_snapshot(vm.id, s1.id, subtree=False)
    remaining = host.checkpoints.find_snapshots(vm.id)
    assert [s.name for s in remaining] == ["s2"]
    assert remaining[0].parent_id is None
    assert host.get_vm(vm.id).current_snapshot_id is None


def test_production_checkpoint_restores_off_and_disabled_fails(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("p")
    host.power.start_vm(vm.id)
    snap = host.checkpoints.checkpoint_vm(vm.id)
    assert snap.captured_state == "Off"
    assert snap.production
    host.lifecycle.set_vm(vm.id, checkpoint_type="Disabled")
    with pytest.raises(HostError) as info:
        host.checkpoints.checkpoint_vm(vm.id)
    assert "Checkpoints are disabled" in info.value.message


def test_vhd_files_survive_remove_vm_and_are_case_insensitive(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("d", generation=2, new_vhd_path="d.vhdx", new_vhd_size=1 << 30)
    path = vm.config.hard_drives[0].path
    assert path is not None
    assert path.startswith("C:\\ProgramData")
    with pytest.raises(HostError) as exists:
        host.disks.new_vhd(path.upper(), 1 << 30)
    assert exists.value.category == "ResourceExists"
    host.lifecycle.remove_vm(vm.id)
    assert host.files.exists(path)
    host.disks.remove_file(path.lower())
    assert not host.files.exists(path)


def test_running_vm_holds_its_disk(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("e", new_vhd_path="e.vhd", new_vhd_size=1 << 30)
    host.power.start_vm(vm.id)
    with pytest.raises(HostError) as info:
        host.disks.remove_file(vm.config.hard_drives[0].path or "")
    assert info.value.category == "WriteError"


def test_memory_capacity_limits_start() -> None:
    host = HyperVHost(transition_delay=0, memory_capacity=2 * 1024**3)
    a = host.lifecycle.new_vm("a", memory_startup=1536 * 1024**2)
    b = host.lifecycle.new_vm("b", memory_startup=1024 * 1024**2)
    host.power.start_vm(a.id)
    with pytest.raises(HostError, match="Not enough memory"):
        host.power.start_vm(b.id)
