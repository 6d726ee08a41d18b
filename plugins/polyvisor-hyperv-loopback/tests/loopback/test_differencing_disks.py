"""Checkpoints' differencing disks in the in-memory host, and the cmdlets that show them."""

from __future__ import annotations

import io
import uuid

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import HostError, PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

BASE = "C:\\VMs\\disk.vhdx"


@pytest.fixture
def host() -> HyperVHost:
    return HyperVHost(transition_delay=0)


def _vm_with_disk(host: HyperVHost) -> uuid.UUID:
    host.disks.new_vhd(BASE, 64 * 1024**2)
    vm = host.lifecycle.new_vm("a", generation=2)
    host.drives.add_hard_disk(vm.id, BASE)
    return vm.id


def _drive(host: HyperVHost, vm_id: uuid.UUID) -> str:
    path = host.get_vm(vm_id).config.hard_drives[0].path
    assert path is not None
    return path


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def test_checkpoint_switches_the_drive_to_a_differencing_disk(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    snap = host.checkpoints.checkpoint_vm(vm_id, "one")
    child = _drive(host, vm_id)
    assert child == f"C:\\VMs\\disk_{str(snap.id).upper()}.avhdx"
    entry = host.disks.get_vhd(child)
    assert (entry.vhd_type, entry.vhd_format, entry.parent_path) == ("Differencing", "VHDX", BASE)
    assert snap.config.hard_drives[0].path == BASE
    (vhd,) = _run(host, f"Get-VHD -Path '{child}'")
    assert vhd.VhdType.name == "Differencing"  # type: ignore[attr-defined]
    assert vhd.ParentPath == BASE  # type: ignore[attr-defined]


def test_checkpoint_drives_come_through_the_pipeline(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    host.checkpoints.checkpoint_vm(vm_id, "one")
    second = host.checkpoints.checkpoint_vm(vm_id, "two")
    drives = _run(host, "Get-VM -Name a | Get-VMSnapshot | Get-VMHardDiskDrive")
    paths = sorted(d.Path for d in drives)  # type: ignore[attr-defined]
    assert paths == sorted([BASE, f"C:\\VMs\\disk_{str(host.checkpoints.find_snapshots(vm_id)[0].id).upper()}.avhdx"])
    assert {d.VMSnapshotName for d in drives} == {"one", "two"}  # type: ignore[attr-defined]
    # Get-VHD binds the drives' Path by property name, as on Windows.
    vhds = _run(host, "Get-VM -Name a | Get-VMSnapshot -Name two | Get-VMHardDiskDrive | Get-VHD")
    assert [v.ParentPath for v in vhds] == [BASE]  # type: ignore[attr-defined]
    assert second.config.hard_drives[0].path != BASE


def test_restore_branches_and_discards_the_abandoned_disk(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    one = host.checkpoints.checkpoint_vm(vm_id, "one")
    abandoned = _drive(host, vm_id)
    host.checkpoints.restore_snapshot(vm_id, one.id)
    now = _drive(host, vm_id)
    assert now != abandoned
    assert host.files.get(abandoned) is None
    assert host.disks.get_vhd(now).parent_path == BASE
    host.checkpoints.checkpoint_vm(vm_id, "two")
    assert len(host.files.paths()) == 3  # the base, the disk of "two" and the one the VM writes to


def test_removing_checkpoints_merges_their_disks(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    one = host.checkpoints.checkpoint_vm(vm_id, "one")
    two = host.checkpoints.checkpoint_vm(vm_id, "two")
    host.checkpoints.remove_snapshot(vm_id, two.id, subtree=False)
    assert host.disks.get_vhd(_drive(host, vm_id)).parent_path == BASE
    host.checkpoints.remove_snapshot(vm_id, one.id, subtree=False)
    assert _drive(host, vm_id) == BASE
    assert host.files.paths() == [BASE]


def test_removing_a_checkpoint_keeps_a_parent_two_branches_need(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    one = host.checkpoints.checkpoint_vm(vm_id, "one")
    two = host.checkpoints.checkpoint_vm(vm_id, "two")
    host.checkpoints.restore_snapshot(vm_id, one.id)
    host.checkpoints.remove_snapshot(vm_id, one.id, subtree=False)
    # "two" still reads from the first differencing disk, the VM from a second one: both need the base.
    assert host.files.get(BASE) is not None
    assert host.disks.get_vhd(
        host.checkpoints.find_snapshots(vm_id, snapshot_id=two.id)[0].config.hard_drives[0].path or ""
    )
    host.checkpoints.remove_snapshot(vm_id, two.id, subtree=False)
    # With no checkpoint left, the VM's differencing disk merges back into the base.
    assert host.files.paths() == [BASE]
    assert _drive(host, vm_id) == BASE


def test_remove_vm_leaves_every_disk_file(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    host.checkpoints.checkpoint_vm(vm_id, "one")
    before = host.files.paths()
    host.lifecycle.remove_vm(vm_id)
    assert host.files.paths() == before
    assert len(before) == 2


def test_files_in_use_cannot_be_removed(host: HyperVHost) -> None:
    vm_id = _vm_with_disk(host)
    host.checkpoints.checkpoint_vm(vm_id, "one")
    host.power.start_vm(vm_id)
    # A running VM holds its whole chain open, the read-only parent included.
    with pytest.raises(PipelineStopped) as info:
        _run(host, f"Remove-Item -LiteralPath '{BASE}' -ErrorAction Stop")
    record = info.value.record
    assert record.category == "WriteError"
    assert record.exception_type == "System.IO.IOException"
    assert "because it is being used by another process" in record.message
    host.power.turn_off_vm(vm_id)
    host.disks.hold_file(BASE)
    with pytest.raises(HostError):
        host.disks.remove_file(BASE)
    host.disks.hold_file(BASE, held=False)
    host.disks.remove_file(BASE)
