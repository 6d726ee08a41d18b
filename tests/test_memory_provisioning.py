"""``memory://`` as a provisioning target: real base files, clones, seeds, the guest agent's clock."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyvisor import Connection, NotFoundError, ValidationError
from polyvisor.provisioning import CloudInit
from polyvisor.testing.memory import ADDRESS_DELAY_LABEL, MemoryBackend, host_named, virtual_size

MIB = 1024 * 1024


def _qcow2(path: Path, size: int) -> Path:
    """A file with a qcow2 version 3 header declaring ``size`` bytes (the rest of the image is not needed)."""
    header = b"QFI\xfb" + struct.pack(">I", 3) + bytes(16) + struct.pack(">Q", size) + bytes(72)
    path.write_bytes(header)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A 2 MiB raw base image with recognisable content."""
    path = tmp_path / "base.img"
    path.write_bytes(b"polyvisor base\n" + bytes(2 * MIB - 15))
    return path


def _backend(conn: Connection) -> MemoryBackend:
    backend = conn.backend
    assert isinstance(backend, MemoryBackend)
    return backend


def test_the_virtual_size_is_the_qcow2_header_s_else_the_file_s(tmp_path: Path, base: Path) -> None:
    assert virtual_size(str(base)) == 2 * MIB
    assert virtual_size(str(_qcow2(tmp_path / "disk.qcow2", 10 * 1024 * MIB))) == 10 * 1024 * MIB


def test_a_linked_clone_records_its_base_and_never_writes_it(mem: Connection, base: Path, tmp_path: Path) -> None:
    before = (base.read_bytes(), base.stat().st_mtime_ns)
    image = _qcow2(tmp_path / "big.qcow2", 8 * 1024 * MIB)
    vm = mem.create(
        {
            "name": "l",
            "disks": [
                {"image": str(base), "clone": "linked"},
                {"image": str(image), "clone": "linked", "size_mib": 9000},
            ],
        }
    )
    extra = vm.info().extra
    assert extra["disk_bases"] == {"vda": str(base), "vdb": str(image)}
    assert extra["disk_sizes_mib"] == {"vda": 2, "vdb": 9000}
    assert extra["disks"]["vda"] == "/memory/l/vda.qcow2"
    vm.resize_disk("vda", 64)
    vm.delete(storage=True)
    assert (base.read_bytes(), base.stat().st_mtime_ns) == before


def test_a_copy_clone_keeps_its_bytes_when_the_base_changes(mem: Connection, base: Path) -> None:
    vm = mem.create({"name": "c", "disks": [{"image": str(base), "clone": "copy"}]})
    base.write_bytes(b"changed")
    host = _backend(mem).host
    (only,) = host.vms.values()
    assert only.disks["vda"].content is not None
    assert only.disks["vda"].content.startswith(b"polyvisor base\n")
    assert vm.info().extra["disk_sizes_mib"] == {"vda": 2}


def test_a_clone_cannot_be_smaller_than_its_base(mem: Connection, tmp_path: Path) -> None:
    image = _qcow2(tmp_path / "base.qcow2", 100 * MIB)
    with pytest.raises(ValidationError, match=r"smaller than the base image .* \(100 MiB\)") as caught:
        mem.create({"name": "small", "disks": [{"image": str(image), "clone": "copy", "size_mib": 99}]})
    assert caught.value.field == "disk.size_mib"
    assert mem.list() == []


def test_a_missing_base_names_the_path_and_leaves_nothing(mem: Connection, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such.qcow2"
    files = set(_backend(mem).host.files)
    with pytest.raises(NotFoundError, match=str(missing)):
        mem.create({"name": "m", "disks": [{"size_mib": 8}, {"image": str(missing), "clone": "linked"}]})
    assert mem.list() == []
    assert _backend(mem).host.files == files


def test_a_base_that_is_not_a_readable_file_is_refused(mem: Connection, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is a directory") as caught:
        mem.create({"name": "d", "disks": [{"image": str(tmp_path), "clone": "copy"}]})
    assert caught.value.field == "disk.image"
    assert mem.list() == []


def test_the_seed_is_a_cdrom_of_the_vm_and_goes_with_it(mem: Connection) -> None:
    vm = mem.create({"name": "seeded", "cloud_init": {"user_data": "#cloud-config\n"}})
    assert vm.info().extra["cdroms"] == {"hdc": "/memory/seeded/cidata.iso"}
    backend = _backend(mem)
    read = backend.seed_iso(vm.uuid)
    image = read()
    assert image is not None
    assert image[32769:32774] == b"CD001"  # an ISO9660 volume descriptor
    vm.delete()
    assert read() is None
    assert backend.host.seeds == {}
    plain = mem.create({"name": "plain"})
    assert plain.info().extra["cdroms"] == {}
    with pytest.raises(NotFoundError, match="no cloud-init seed"):
        backend.seed_iso(plain.uuid)


def test_a_seed_that_cannot_be_built_leaves_nothing(mem: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    import polyvisor.testing.memory as memory

    def broken(cloud_init: CloudInit) -> bytes:
        raise ValidationError("cannot build", field="cloud_init")

    monkeypatch.setattr(memory, "build_seed_iso", broken)
    with pytest.raises(ValidationError):
        mem.create({"name": "s", "disks": [{"size_mib": 8}], "cloud_init": {}})
    assert mem.list() == []


@pytest.fixture
def now(host_name: str) -> Iterator[list[float]]:
    """The memory host's clock, set by the test."""
    clock = [0.0]
    host = host_named(host_name)
    saved, host.clock = host.clock, lambda: clock[0]
    yield clock
    host.clock = saved


def test_the_agent_connects_after_the_delay_from_each_boot(mem: Connection, now: list[float]) -> None:
    vm = mem.create({"name": "late", "nics": [{}], "labels": {ADDRESS_DELAY_LABEL: "2.5"}})
    vm.start()
    assert vm.addresses() == []
    now[0] = 2.5
    assert [a.address for a in vm.addresses()][2] == "10.0.0.1"
    vm.reboot()
    assert vm.addresses() == [], "a reboot starts the guest again"
    now[0] = 5.0
    vm.save()
    now[0] = 100.0
    vm.start()
    assert vm.addresses() != [], "a restored guest carries on where it was"


def test_live_memory_without_dynamic_memory_stays_under_the_boot_size(mem: Connection) -> None:
    vm = mem.create({"name": "balloon", "memory_mib": 256})
    vm.start()
    assert vm.reconfigure(memory_mib=128).memory_mib == 128
    with pytest.raises(ValidationError, match="the memory it booted with"):
        vm.reconfigure(memory_mib=512)
    info = mem.create(
        {
            "name": "dyn",
            "memory_mib": 256,
            "dynamic_memory": {"minimum_mib": 128, "maximum_mib": 512, "buffer_percent": 20},
        }
    ).info()
    assert info.details is not None
    assert info.details.dynamic_memory is not None
    assert info.details.dynamic_memory.buffer_percent == 20
