"""Verbs as the hypervisor carries them out: delete from every state, saved state, capability gates.

Which verbs the contract accepts from which state is the core's own table: the core's unit tests check that refused
and idempotent calls never reach a backend. Accepted verbs from every way of reaching a state: ``test_paths``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polyvisor import VM, Connection, Feature, InvalidStateError, NotFoundError, PowerState
from polyvisor.testing.fixtures import SpecFactory, VolumePaths, unique_name
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


def _volume_exists(conn: Connection, spec: SpecFactory, path: str) -> bool:
    """Whether ``path`` names a volume on the target: a VM with that disk image can be created (a missing image is
    NotFoundError, which ``test_create`` holds every backend to). The VM made to find out is deleted, the volume
    kept."""
    try:
        probe = conn.create(spec(unique_name("vol"), disks=[{"image": path}]))
    except NotFoundError:
        return False
    probe.delete()
    return True


def test_delete_with_storage_removes_the_volumes_it_made(
    polyvisor_connection: Connection,
    polyvisor_vm_factory: VMFactory,
    polyvisor_spec: SpecFactory,
    polyvisor_volume_paths: VolumePaths,
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.DELETE_STORAGE)
    # The spec's own new disks where it has some (a target may need them in a pool of its own), else one of 8 MiB.
    spec = polyvisor_spec(unique_name("dst"))
    makes_disks = any(disk.image is None or disk.clone is not None for disk in spec.disks)
    vm = polyvisor_vm_factory("dst", **({} if makes_disks else {"disks": [{"size_mib": 8}]}))
    paths = polyvisor_volume_paths(vm)
    assert paths, (
        f"the kit sees no volume of {vm.seen_name}, made with a new disk: a backend that declares delete-storage "
        'shows its VMs\' disks in info().details.extra["disks"] (target: path), or its kit plugin overrides the '
        "polyvisor_volume_paths fixture (-p polyvisor_libvirt.testing, -p polyvisor_hyperv.testing)"
    )
    unseen = [path for path in paths if not _volume_exists(conn, polyvisor_spec, path)]
    assert unseen == [], f"polyvisor_volume_paths names volumes no disk image can name: {unseen}"
    vm.delete(storage=True)
    left = [path for path in paths if _volume_exists(conn, polyvisor_spec, path)]
    assert left == [], f"delete(storage=True) left the volumes it made for {vm.seen_name}: {left}"


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
