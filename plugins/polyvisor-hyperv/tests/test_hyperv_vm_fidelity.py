"""The backend against behaviours the loopback host models as Windows does (issue 8: checkpoints, drives, NICs,
delete), over both transports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import PolyvisorError, UnsupportedError

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def test_checkpoint_of_a_paused_vm_is_paused_and_reverts_paused(conn: polyvisor.Connection, vm_name: str) -> None:
    # A checkpoint's State is only Off or Saved on Windows (NEON VMSnapshot.cs), so the backend records the rest.
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}], "labels": {"team": "a"}})
    try:
        vm.start()
        vm.snapshot("running", memory=True)
        vm.pause()
        vm.snapshot("paused", memory=True)
        tree = vm.snapshots()
        assert tree["running"].state is PowerState.RUNNING
        assert tree["paused"].state is PowerState.PAUSED
        assert tree["running"].has_memory
        assert tree["paused"].has_memory
        assert vm.labels() == {"team": "a"}  # the record is no label
        assert vm.revert("running").state is PowerState.RUNNING  # from a paused VM
        assert vm.revert("paused").state is PowerState.PAUSED  # from a running VM: not left running
        assert vm.labels() == {"team": "a"}
        assert vm.revert("running").state is PowerState.RUNNING
        assert vm.revert("running").state is PowerState.RUNNING  # from a running VM: Windows restarts it
        vm.stop()
        assert vm.revert("paused").state is PowerState.PAUSED  # from a stopped VM
    finally:
        vm.stop()
        vm.delete(storage=True)


def test_generation_1_cdrom_uses_the_dvd_drive_new_vm_made(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # New-VM gives a Generation 1 VM an empty DVD drive at IDE 1:0 (NEON Commands/NewVM.cs).
    iso = _host(loopback_http).add_file(f"C:\\ISO\\{vm_name}.iso")
    vm = conn.create({"name": vm_name, "firmware": "bios", "cdrom": iso})
    try:
        drives = _host(loopback_http).get_vm(uuid.UUID(vm.uuid)).config.dvd_drives
        assert [(d.controller_type, d.controller_number, d.controller_location, d.path) for d in drives] == [
            ("IDE", 1, 0, iso)
        ]
    finally:
        vm.delete()


def test_nic_hotplug_is_generation_2_only(conn: polyvisor.Connection, vm_name: str) -> None:
    gen1 = conn.create({"name": vm_name, "firmware": "bios", "nics": [{"network": "Default Switch"}]})
    gen2 = conn.create({"name": vm_name + "-2", "firmware": "uefi"})
    try:
        assert Feature.NIC_HOTPLUG not in gen1.capabilities()
        assert Feature.NIC_HOTPLUG in gen2.capabilities()
        assert Feature.NIC_ATTACH in gen1.capabilities()
        gen1.start()
        with pytest.raises(UnsupportedError) as info:
            gen1.attach_nic({"network": "Default Switch"})
        assert info.value.feature is Feature.NIC_HOTPLUG
        backend = conn._backend  # the primitive itself refuses too, whatever the caller checked
        assert backend is not None
        with pytest.raises(UnsupportedError) as info:
            backend.attach_nic(gen1.uuid, polyvisor.NicSpec(network="Default Switch"), live=True)
        assert info.value.feature is Feature.NIC_HOTPLUG
        gen2.start()
        mac2 = gen2.attach_nic({"network": "Default Switch"})
        gen2.detach_nic(mac2)
    finally:
        for vm in (gen1, gen2):
            vm.stop()
            vm.delete()


def test_detach_disk_removes_only_the_drive_at_that_slot(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # Get-VMHardDiskDrive -ControllerType/-ControllerNumber/-ControllerLocation narrow the drives it returns
    # (Get-VMHardDiskDrive.md), so the backend pipes exactly one drive into Remove-VMHardDiskDrive.
    host = _host(loopback_http)
    vm = conn.create({"name": vm_name, "firmware": "uefi", "disks": [{"size_mib": 64}]})
    try:
        first, second = vm.attach_disk({"size_mib": 16}, live=False), vm.attach_disk({"size_mib": 16}, live=False)
        assert len({first, second}) == 2
        vm.detach_disk(first, live=False)
        slots = [
            f"{d.controller_type}:{d.controller_number}:{d.controller_location}"
            for d in host.get_vm(uuid.UUID(vm.uuid)).config.hard_drives
        ]
        assert first not in slots
        assert second in slots
        assert len(slots) == 2  # the boot disk and the second one
        with pytest.raises(polyvisor.NotFoundError, match=first):
            vm.detach_disk(first, live=False)
    finally:
        vm.delete(storage=True)


def test_detach_nic_refuses_names_that_differ_only_in_case(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # -Name matches case-insensitively (NEON Commands/ParameterResolvers.cs FilterNetworkAdaptersByName).
    host = _host(loopback_http)
    vm = conn.create({"name": vm_name})
    try:
        host.network.add_network_adapter(uuid.UUID(vm.uuid), "Lan", None, "00155D0000A1")
        host.network.add_network_adapter(uuid.UUID(vm.uuid), "LAN", None, "00155D0000A2")
        with pytest.raises(PolyvisorError, match="several adapters"):
            vm.detach_nic("00:15:5d:00:00:a1", live=False)
        names = sorted(n.name for n in host.get_vm(uuid.UUID(vm.uuid)).config.network_adapters)
        assert names == ["LAN", "Lan"]
    finally:
        vm.delete()


def test_delete_with_storage_leaves_a_pass_through_disk_alone(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # A pass-through drive's Path is the physical disk's friendly name (NEON HardDiskDrive.cs): as a path it is
    # relative to the session's current directory, where a file of that name may well exist.
    host = _host(loopback_http)
    number = 40 + len(host.physical_disks)
    friendly = f"Disk {number} 2.00 GB Bus 0 Lun 0 Target {number}"
    host.add_physical_disk(number, friendly)
    bystander = host.add_file("C:\\" + friendly)
    before = set(host.files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    host.drives.add_hard_disk(uuid.UUID(vm.uuid), None, "SCSI", disk_number=number)
    vm.delete(storage=True)
    assert set(host.files.paths()) == before  # the VHD went, the file named like the physical disk stayed
    assert host.files.exists(bystander)
    host.disks.remove_file(bystander)


def test_delete_with_storage_waits_for_the_checkpoint_merge(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    # Remove-VM merges checkpoint disks after it returns (DOCS Remove-VM.md), holding them open meanwhile.
    host = _host(loopback_private)
    host.merge_delay = 60.0
    conn = connect(uri_for(loopback_private, transport))
    before = set(host.files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    vm.snapshot("first")
    vm.start()
    vm.snapshot("second")
    vm.stop()
    vm.delete(storage=True, timeout=30)
    assert not host.disks.merging
    assert set(host.files.paths()) - before == set()
