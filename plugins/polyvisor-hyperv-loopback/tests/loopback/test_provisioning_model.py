"""The in-memory host's provisioning behaviour: clones, Resize-VHD, byte writes and hashes, KVP addresses, dynamic
memory and processor counts, each as Windows has it (docs/hyperv-fidelity.md names the sources)."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.hyperv.storage import guest_write
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped, PSErrorRecord
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

BASE = "C:\\Images\\base.vhdx"
MiB = 1024**2


@pytest.fixture
def host() -> HyperVHost:
    hv = HyperVHost(transition_delay=0, kvp_delay=0)
    hv.disks.new_vhd(BASE, 64 * MiB)
    return hv


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def _fails(host: HyperVHost, script: str) -> PSErrorRecord:
    with pytest.raises(PipelineStopped) as info:
        _run(host, "$ErrorActionPreference = 'Stop'; " + script)
    return info.value.record


def _vm_on(host: HyperVHost, disk: str, *, generation: int = 2, controller: str = "SCSI") -> uuid.UUID:
    vm = host.lifecycle.new_vm(f"vm-{uuid.uuid4().hex[:6]}", generation=generation)
    host.drives.add_hard_disk(vm.id, disk, controller)
    return vm.id


def test_linked_clones_write_to_their_own_child_and_never_to_the_parent(host: HyperVHost) -> None:
    parent_hash = host.disks.get_vhd(BASE).sha256()
    children = []
    for name in ("a", "b"):
        path = f"C:\\VMs\\{name}.vhdx"
        (vhd,) = _run(host, f"New-VHD -Path '{path}' -ParentPath '{BASE}' -Differencing")
        assert (vhd.VhdType.name, vhd.ParentPath, vhd.Size) == ("Differencing", BASE, 64 * MiB)  # type: ignore[attr-defined]
        vm_id = _vm_on(host, path)
        host.power.start_vm(vm_id)
        assert guest_write(host, vm_id, f"written by {name}".encode()) == path
        children.append(path)
    hashes = [hash_ for (hash_,) in (_run(host, f"(Get-FileHash -LiteralPath '{p}').Hash") for p in children)]
    assert hashes[0] != hashes[1]
    assert host.disks.get_vhd(BASE).sha256() == parent_hash


def test_a_differencing_disk_needs_its_parent(host: HyperVHost) -> None:
    record = _fails(host, "New-VHD -Path 'C:\\VMs\\c.vhdx' -ParentPath 'C:\\Images\\missing.vhdx' -Differencing")
    assert record.category == "ObjectNotFound"
    assert "C:\\Images\\missing.vhdx" in record.message
    assert host.files.get("C:\\VMs\\c.vhdx") is None


def test_copy_item_makes_an_independent_copy(host: HyperVHost) -> None:
    _run(host, f"Copy-Item -LiteralPath '{BASE}' -Destination 'C:\\VMs\\copy.vhdx'")
    copy = host.disks.get_vhd("C:\\VMs\\copy.vhdx")
    assert (copy.vhd_type, copy.parent_path, copy.size) == ("Dynamic", None, 64 * MiB)
    vm_id = _vm_on(host, copy.path)
    host.power.start_vm(vm_id)
    before = host.disks.get_vhd(BASE).sha256()
    guest_write(host, vm_id, b"data")
    assert host.disks.get_vhd(BASE).sha256() == before


def test_resize_vhd_grows_and_never_shrinks(host: HyperVHost) -> None:
    (vhd,) = _run(host, f"Resize-VHD -Path '{BASE}' -SizeBytes 128MB -Passthru")
    assert vhd.Size == 128 * MiB  # type: ignore[attr-defined]
    record = _fails(host, f"Resize-VHD -Path '{BASE}' -SizeBytes 64MB")
    assert (record.category, record.fully_qualified_error_id.split(",")[0]) == ("InvalidArgument", "InvalidParameter")
    assert host.disks.get_vhd(BASE).size == 128 * MiB
    host.disks.new_vhd("C:\\Images\\old.vhd", 64 * MiB)
    assert "VHD cannot be shrunk" in _fails(host, "Resize-VHD -Path 'C:\\Images\\old.vhd' -SizeBytes 32MB").message
    host.disks.new_vhd("C:\\Images\\child.vhd", None, vhd_type="Differencing", parent_path="C:\\Images\\old.vhd")
    assert _fails(host, "Resize-VHD -Path 'C:\\Images\\child.vhd' -SizeBytes 128MB").category == "NotImplemented"


def test_a_running_vm_resizes_scsi_disks_only(host: HyperVHost) -> None:
    host.disks.new_vhd("C:\\VMs\\ide.vhdx", 64 * MiB)
    ide = _vm_on(host, "C:\\VMs\\ide.vhdx", generation=1, controller="IDE")
    scsi = _vm_on(host, BASE)
    host.power.start_vm(ide)
    host.power.start_vm(scsi)
    record = _fails(host, "Resize-VHD -Path 'C:\\VMs\\ide.vhdx' -SizeBytes 128MB")
    assert record.fully_qualified_error_id.startswith("InvalidState")
    _run(host, f"Resize-VHD -Path '{BASE}' -SizeBytes 128MB")
    assert host.disks.get_vhd(BASE).size == 128 * MiB


def test_bytes_are_written_and_hashed_as_given(host: HyperVHost) -> None:
    payload = bytes(range(256)) * 3
    host_session = (
        "$b = [System.Convert]::FromBase64String('{}'); {} -LiteralPath 'C:\\Seeds\\s.iso' -Value $b -Encoding Byte"
    )

    half = len(payload) // 2
    _run(host, host_session.format(base64.b64encode(payload[:half]).decode(), "Set-Content"))
    _run(host, host_session.format(base64.b64encode(payload[half:]).decode(), "Add-Content"))
    (digest,) = _run(host, "(Get-FileHash -LiteralPath 'C:\\Seeds\\s.iso' -Algorithm SHA256).Hash")
    assert digest == hashlib.sha256(payload).hexdigest().upper()
    vm = host.lifecycle.new_vm("dvd", generation=2)
    (drive,) = _run(host, "Get-VM -Name dvd | Add-VMDvdDrive -Path 'C:\\Seeds\\s.iso' -Passthru")
    assert (drive.ControllerType.name, drive.Path) == ("SCSI", "C:\\Seeds\\s.iso")  # type: ignore[attr-defined]
    assert host.get_vm(vm.id).config.dvd_drives[0].path == "C:\\Seeds\\s.iso"


def test_kvp_addresses_appear_after_the_delay_and_only_while_running(host: HyperVHost) -> None:
    host.kvp_delay = 3600.0
    vm = host.lifecycle.new_vm("kvp", generation=2, switch_name="Default Switch")
    host.power.start_vm(vm.id)
    (nic,) = _run(host, "Get-VM -Name kvp | Get-VMNetworkAdapter")
    assert nic.IPAddresses == []  # type: ignore[attr-defined]
    host.kvp_delay = 0.0
    (nic,) = _run(host, "Get-VM -Name kvp | Get-VMNetworkAdapter")
    assert nic.IPAddresses[0].startswith("192.0.2.")  # type: ignore[attr-defined]
    host.power.suspend_vm(vm.id)
    (nic,) = _run(host, "Get-VM -Name kvp | Get-VMNetworkAdapter")
    assert nic.IPAddresses == []  # type: ignore[attr-defined]
    host.power.resume_vm(vm.id)
    host.guests.set_guest(vm.id, "no-kvp")
    (nic,) = _run(host, "Get-VM -Name kvp | Get-VMNetworkAdapter")
    assert nic.IPAddresses == []  # type: ignore[attr-defined]


def test_dynamic_memory_rules(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("mem", generation=2, memory_startup=1024 * MiB)
    record = _fails(host, "Get-VM -Name mem | Set-VMMemory -MaximumBytes 2GB")
    assert "requires Dynamic Memory to be enabled" in record.message
    assert "Startup" in _fails(
        host, "Get-VM -Name mem | Set-VMMemory -DynamicMemoryEnabled $true -MinimumBytes 2GB -MaximumBytes 4GB"
    ).message.replace("startup", "Startup")
    _run(host, "Get-VM -Name mem | Set-VMMemory -DynamicMemoryEnabled $true -MinimumBytes 512MB -MaximumBytes 2GB")
    host.power.start_vm(vm.id)
    (obj,) = _run(host, "Get-VM -Name mem")
    assert obj.MemoryAssigned == 1024 * MiB  # type: ignore[attr-defined]
    _run(host, "Get-VM -Name mem | Set-VMMemory -MaximumBytes 4GB -MinimumBytes 256MB -Buffer 40")
    (mem,) = _run(host, "Get-VM -Name mem | Get-VMMemory")
    assert (mem.Minimum, mem.Maximum, mem.Buffer) == (256 * MiB, 4096 * MiB, 40)  # type: ignore[attr-defined]
    for change in ("-MaximumBytes 3GB", "-MinimumBytes 512MB", "-StartupBytes 2GB", "-DynamicMemoryEnabled $false"):
        record = _fails(host, f"Get-VM -Name mem | Set-VMMemory {change}")
        assert record.fully_qualified_error_id.startswith("InvalidState"), change


def test_static_memory_resizes_at_run_time_and_processors_do_not(host: HyperVHost) -> None:
    vm = host.lifecycle.new_vm("static", generation=1, memory_startup=1024 * MiB)
    _run(host, "Get-VM -Name static | Set-VMProcessor -Count 2")
    host.power.start_vm(vm.id)
    _run(host, "Get-VM -Name static | Set-VMMemory -StartupBytes 2GB")
    (obj,) = _run(host, "Get-VM -Name static")
    assert (obj.MemoryStartup, obj.MemoryAssigned, obj.ProcessorCount) == (2048 * MiB, 2048 * MiB, 2)  # type: ignore[attr-defined]
    record = _fails(host, "Get-VM -Name static | Set-VMProcessor -Count 4")
    assert record.fully_qualified_error_id.startswith("InvalidState")
    assert "Processor" in record.message
    assert host.get_vm(vm.id).config.processor_count == 2
