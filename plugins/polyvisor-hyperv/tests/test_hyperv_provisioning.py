"""Provisioning on Hyper-V (issue 9), over both transports against the loopback host: disks cloned from images,
the cloud-init seed, KVP addresses, reconfigure, dynamic memory and resize_disk."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import InvalidStateError, NotFoundError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.provisioning import CloudInit, build_seed_iso
from polyvisor_hyperv import images as hyperv_images
from polyvisor_hyperv.images import SEED_CHUNK

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]
MiB = 1024 * 1024


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def _base(loopback: Any, name: str, size_mib: int = 64) -> str:
    path = f"C:\\Images\\{name}-{uuid.uuid4().hex[:6]}.vhdx"
    _host(loopback).disks.new_vhd(path, size_mib * MiB)
    return path


def _disk(loopback: Any, vm: polyvisor.VM, index: int = 0) -> str:
    path = _host(loopback).get_vm(uuid.UUID(vm.uuid)).config.hard_drives[index].path
    assert path is not None
    return str(path)


def test_linked_clones_share_a_parent_that_never_changes(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    from polyvisor_hyperv_loopback.hyperv.storage import guest_write

    host = _host(loopback_http)
    base = _base(loopback_http, "linked")
    parent_hash = host.disks.get_vhd(base).sha256()
    vms = [conn.create({"name": f"{vm_name}-{i}", "disks": [{"image": base, "clone": "linked"}]}) for i in (1, 2)]
    try:
        children = [_disk(loopback_http, vm) for vm in vms]
        assert len(set(children)) == 2
        assert base not in children
        for i, (vm, child) in enumerate(zip(vms, children, strict=True)):
            entry = host.disks.get_vhd(child)
            assert (entry.vhd_type, entry.parent_path) == ("Differencing", base)
            vm.start()
            guest_write(host, uuid.UUID(vm.uuid), f"guest {i} was here".encode())
        assert host.disks.get_vhd(children[0]).sha256() != host.disks.get_vhd(children[1]).sha256()
        assert host.disks.get_vhd(base).sha256() == parent_hash
    finally:
        for vm in vms:
            vm.ensure("stopped", force=True)
            vm.delete(storage=True)
    assert host.files.get(base) is not None, "deleting a linked clone never removes its base"
    assert all(host.files.get(child) is None for child in children)
    assert host.disks.get_vhd(base).sha256() == parent_hash


def test_a_copy_is_independent_and_grows_to_size_mib(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = _host(loopback_http)
    base = _base(loopback_http, "copy")
    vm = conn.create({"name": vm_name, "disks": [{"image": base, "clone": "copy", "size_mib": 128}]})
    try:
        copy = host.disks.get_vhd(_disk(loopback_http, vm))
        assert (copy.vhd_type, copy.parent_path, copy.size) == ("Dynamic", None, 128 * MiB)
        assert host.disks.get_vhd(base).size == 64 * MiB
    finally:
        vm.delete(storage=True)
    assert host.files.get(base) is not None
    assert host.files.get(copy.path) is None


def test_a_missing_base_or_a_smaller_size_creates_nothing(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = _host(loopback_http)
    before_files, before_vms = set(host.files.paths()), {vm.uuid for vm in conn.list()}
    missing = "C:\\Images\\no-such-base.vhdx"
    with pytest.raises(NotFoundError, match=r"no-such-base\.vhdx"):
        conn.create({"name": vm_name, "disks": [{"image": missing, "clone": "linked"}]})
    base = _base(loopback_http, "small", 64)
    before_files.add(base)
    with pytest.raises(ValidationError) as info:
        conn.create({"name": vm_name, "disks": [{"image": base, "clone": "copy", "size_mib": 32}]})
    assert "32 MiB" in str(info.value)
    assert "64 MiB" in str(info.value)
    assert base in str(info.value)
    assert set(host.files.paths()) == before_files
    assert {vm.uuid for vm in conn.list()} == before_vms


def test_a_user_mode_nic_is_refused_before_anything_is_made(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # WinNAT gives no DHCP and no NAT loopback, so Hyper-V declares no user-networking (docs/hyperv-fidelity.md).
    host = _host(loopback_http)
    before_files, before_vms = set(host.files.paths()), {vm.uuid for vm in conn.list()}
    assert not conn.capabilities.supports(Feature.USER_NETWORKING)
    with pytest.raises(UnsupportedError, match="user-networking") as info:
        conn.create({"name": vm_name, "nics": [{"kind": "user", "forwards": ["2222:22"]}]})
    assert info.value.feature is Feature.USER_NETWORKING
    assert set(host.files.paths()) == before_files
    assert {vm.uuid for vm in conn.list()} == before_vms


HOSTILE = "'; Remove-VM * -Force; \"$(Stop-Computer -Force)\" `n @'\n'@ ${env:PATH} $null | Out-Null\r\n"


def test_the_seed_arrives_byte_for_byte_and_never_as_source(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(loopback_http)
    user_data = "#cloud-config\n" + (HOSTILE * (100 * 1024 // len(HOSTILE) + 1))
    cloud_init = CloudInit(user_data=user_data, instance_id=vm_name)
    # The image the backend uploads, kept as it was built: two builds of one value differ in their timestamps
    # (pycdlib stamps the current second), so a second build here would differ whenever a second ticked between.
    built: list[bytes] = []

    def build_and_keep(value: CloudInit) -> bytes:
        built.append(build_seed_iso(value))
        return built[-1]

    monkeypatch.setattr(hyperv_images, "build_seed_iso", build_and_keep)
    scripts_before = len(loopback_http.engine.scripts_run)
    vm = conn.create({"name": vm_name, "firmware": "uefi", "cloud_init": cloud_init})
    try:
        (expected,) = built
        assert len(expected) > 2 * SEED_CHUNK, "the upload takes several chunks"
        (drive,) = host.get_vm(uuid.UUID(vm.uuid)).config.dvd_drives
        assert drive.controller_type == "SCSI"
        seed = host.files.get(drive.path)
        assert bytes(seed.data) == expected
        assert hashlib.sha256(bytes(seed.data)).hexdigest() == hashlib.sha256(expected).hexdigest()
        scripts = loopback_http.engine.scripts_run[scripts_before:]
        assert not any("Stop-Computer" in script or "no-such" in script for script in scripts)
        assert all(HOSTILE.strip() not in script for script in scripts)
        assert vm.labels() == {}
    finally:
        vm.delete()
    assert host.files.get(drive.path) is None, "the seed is deleted with the VM"


def test_a_generation_1_seed_uses_the_ide_dvd_drive(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = _host(loopback_http)
    vm = conn.create({"name": vm_name, "firmware": "bios", "cloud_init": {"user_data": "#cloud-config\n"}})
    try:
        (drive,) = host.get_vm(uuid.UUID(vm.uuid)).config.dvd_drives
        assert (drive.controller_type, drive.controller_number, drive.controller_location) == ("IDE", 1, 0)
        assert drive.path.endswith(f"{vm.uuid}-cidata.iso")
    finally:
        vm.delete(storage=True)
    assert host.files.get(drive.path) is None


def test_wait_for_address_returns_what_kvp_reports(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    _host(loopback_private).kvp_delay = 1.0
    conn = connect(uri_for(loopback_private, transport))
    assert conn.backend.address_sources == ("kvp",)
    vm = conn.create({"name": vm_name, "nics": [{"network": "Default Switch"}]})
    try:
        vm.start()
        started = time.monotonic()
        found = vm.wait_for_address(timeout=30)
        assert time.monotonic() - started >= 0.5
        assert found.source == "kvp"
        assert found.address.startswith("192.0.2.")
        assert {a.source for a in vm.addresses()} == {"kvp"}
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()


def test_wait_for_address_explains_a_silent_kvp(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create(
        {"name": vm_name, "nics": [{"network": "Default Switch"}], "labels": {"polyvisor.test/guest": "no-kvp"}}
    )
    try:
        vm.start()
        with pytest.raises(TimeoutError) as info:
            vm.wait_for_address(timeout=1.5)
        assert "kvp: no addresses reported (integration services / KVP daemon not running in the guest?)" in str(
            info.value
        )
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()


def test_reconfigure_cold_live_and_refused(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create({"name": vm_name, "cpus": 1, "memory_mib": 512})
    try:
        caps = vm.capabilities()
        assert Feature.RECONFIGURE in caps
        assert Feature.RECONFIGURE_LIVE_MEMORY in caps
        assert Feature.RECONFIGURE_LIVE_CPUS not in caps
        info = vm.reconfigure(cpus=2, memory_mib=1024)
        assert (_details(info).cpus, _details(info).memory_mib) == (2, 1024)
        vm.start()
        assert _details(vm.reconfigure(memory_mib=2048)).memory_mib == 2048  # runtime resize of static memory
        with pytest.raises(UnsupportedError) as refused:
            vm.reconfigure(cpus=4)
        assert refused.value.feature is Feature.RECONFIGURE_LIVE_CPUS
        with pytest.raises(InvalidStateError):
            vm.reconfigure(cpus=4, live=False)
        assert _details(vm.info()).cpus == 2
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()


def test_dynamic_memory_in_the_spec_and_in_info(conn: polyvisor.Connection, vm_name: str) -> None:
    spec = {
        "name": vm_name,
        "memory_mib": 1024,
        "dynamic_memory": {"minimum_mib": 512, "maximum_mib": 2048, "buffer_percent": 30},
    }
    vm = conn.create(spec)
    try:
        details = _details(vm.info())
        assert details.dynamic_memory == polyvisor.model.DynamicMemory(512, 2048, 30)
        assert details.memory_mib == 1024
        with pytest.raises(ValidationError, match="512-2048"):
            vm.reconfigure(memory_mib=4096)  # stopped: startup memory must lie within the range
        assert Feature.RECONFIGURE_LIVE_MEMORY not in vm.capabilities()  # Hyper-V sets it, within the range
        vm.start()
        assert _details(vm.info()).memory_mib == 1024  # assigned memory while running
        with pytest.raises(UnsupportedError) as refused:
            vm.reconfigure(memory_mib=768)
        assert refused.value.feature is Feature.RECONFIGURE_LIVE_MEMORY
        assert _details(vm.info()).dynamic_memory == polyvisor.model.DynamicMemory(512, 2048, 30)
        assert any(_details(v).dynamic_memory for v in conn.list() if v.uuid == vm.uuid)
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()


def test_resize_disk_grows_and_refuses_to_shrink(conn: polyvisor.Connection, loopback_http: Any, vm_name: str) -> None:
    host = _host(loopback_http)
    vm = conn.create({"name": vm_name, "firmware": "uefi", "disks": [{"size_mib": 64}]})
    try:
        (target,) = [f"SCSI:{d.controller_number}:{d.controller_location}" for d in _drives(host, vm)]
        vm.resize_disk(target, 128)
        assert host.disks.get_vhd(_disk(loopback_http, vm)).size == 128 * MiB
        with pytest.raises(ValidationError, match="shrink"):
            vm.resize_disk(target, 64)
        with pytest.raises(NotFoundError, match=target):
            vm.resize_disk("SCSI:3:9", 256)
        vm.start()
        vm.resize_disk(target, 256)  # online, on SCSI
        assert host.disks.get_vhd(_disk(loopback_http, vm)).size == 256 * MiB
    finally:
        vm.ensure("stopped", force=True)
        vm.delete(storage=True)


def test_an_ide_disk_resizes_only_while_off(conn: polyvisor.Connection, loopback_http: Any, vm_name: str) -> None:
    vm = conn.create({"name": vm_name, "firmware": "bios", "disks": [{"size_mib": 64}]})
    try:
        vm.start()
        with pytest.raises(InvalidStateError, match="IDE"):
            vm.resize_disk("IDE:0:0", 128)
        vm.stop()
        vm.resize_disk("IDE:0:0", 128)
        assert vm.state() is PowerState.STOPPED
    finally:
        vm.delete(storage=True)


def _drives(host: Any, vm: polyvisor.VM) -> list[Any]:
    return list(host.get_vm(uuid.UUID(vm.uuid)).config.hard_drives)


def _details(info: polyvisor.VMInfo) -> polyvisor.model.VMDetails:
    assert info.details is not None
    return info.details
