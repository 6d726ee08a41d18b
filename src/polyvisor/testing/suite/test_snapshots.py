"""Snapshots (checkpoints) as a tree: create, list, current, revert, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polyvisor import (
    VM,
    AlreadyExistsError,
    Connection,
    Feature,
    InvalidStateError,
    NotFoundError,
    PowerState,
    UnsupportedError,
    ValidationError,
)
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


@pytest.fixture(autouse=True)
def _snapshots_declared(polyvisor_connection: Connection) -> None:
    """Skip before a VM is made; a VM's own capabilities may narrow the connection's further (``_snap_vm``)."""
    require(polyvisor_connection, Feature.SNAPSHOTS)


def _snap_vm(factory: VMFactory, tag: str) -> VM:
    vm = factory(tag)
    require(vm, Feature.SNAPSHOTS)
    return vm


def test_tree_parent_children_current(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "sn")
    a = vm.snapshot("a")
    assert a.name == "a"
    assert a.parent is None
    vm.snapshot("b")
    vm.revert("a")
    vm.snapshot("c")
    tree = vm.snapshots()
    assert sorted(s.name for s in tree) == ["a", "b", "c"]
    assert [s.name for s in tree.roots] == ["a"]
    assert sorted(s.name for s in tree.children("a")) == ["b", "c"]
    assert tree["b"].parent == "a"
    assert tree.current is not None
    assert tree.current.name == "c"
    assert sum(1 for s in tree if s.is_current) == 1


def test_revert_restores_recorded_state(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snr")
    vm.snapshot("off")
    assert vm.snapshots()["off"].state is PowerState.STOPPED
    vm.start()
    assert vm.revert("off").state is PowerState.STOPPED
    assert vm.state() is PowerState.STOPPED


def test_memory_snapshot_of_running_vm(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snm")
    require(vm, Feature.SNAPSHOT_MEMORY)
    vm.start()
    snap = vm.snapshot("live", memory=True)
    assert snap.has_memory
    assert snap.state is PowerState.RUNNING
    vm.stop()
    assert vm.revert("live").state in (PowerState.RUNNING, PowerState.PAUSED)


def test_disk_only_snapshot_of_running_vm_reverts_to_stopped(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snd0")
    vm.start()
    snap = vm.snapshot("disks-only")
    assert not snap.has_memory
    assert vm.status().state is PowerState.RUNNING, "taking a snapshot leaves the VM running"
    assert not vm.snapshots()["disks-only"].has_memory
    assert vm.revert("disks-only").state is PowerState.STOPPED
    assert vm.state() is PowerState.STOPPED


def test_memory_snapshot_needs_a_running_vm(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snms")
    require(vm, Feature.SNAPSHOT_MEMORY)
    with pytest.raises(InvalidStateError):
        vm.snapshot("nope", memory=True)
    assert len(vm.snapshots()) == 0


def test_delete_keeps_children_by_default(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snd")
    vm.snapshot("root")
    vm.snapshot("mid")
    vm.snapshot("leaf")
    vm.delete_snapshot("mid")
    tree = vm.snapshots()
    assert sorted(s.name for s in tree) == ["leaf", "root"]
    assert tree["leaf"].parent == "root", "children move up to the deleted snapshot's parent"


def test_delete_with_children(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "sndc")
    vm.snapshot("root")
    vm.snapshot("mid")
    vm.snapshot("leaf")
    vm.delete_snapshot("mid", children=True)
    assert [s.name for s in vm.snapshots()] == ["root"]


def test_snapshot_errors(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "sne")
    vm.snapshot("one")
    with pytest.raises(AlreadyExistsError):
        vm.snapshot("one")
    with pytest.raises(NotFoundError):
        vm.revert("absent")
    with pytest.raises(NotFoundError):
        vm.delete_snapshot("absent")
    with pytest.raises(ValidationError):
        vm.snapshot("bad\nname")
    assert [s.name for s in vm.snapshots()] == ["one"]


def test_hostile_snapshot_names_round_trip(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snh")
    names = ['it\'s "q"', "<a>&b<a>", "$(x); `y`"]
    for name in names:
        vm.snapshot(name)
    tree = vm.snapshots()
    assert sorted(s.name for s in tree) == sorted(names)


def test_snapshot_descriptions(polyvisor_vm_factory: VMFactory) -> None:
    vm = _snap_vm(polyvisor_vm_factory, "snde")
    text = "d<&>'\"\nz $(x) `y`"
    if not vm.capabilities().supports(Feature.SNAPSHOT_DESCRIPTION):
        with pytest.raises(UnsupportedError):
            vm.snapshot("described", description=text)
        assert len(vm.snapshots()) == 0
        return
    vm.snapshot("described", description=text)
    assert vm.snapshots()["described"].description == text
