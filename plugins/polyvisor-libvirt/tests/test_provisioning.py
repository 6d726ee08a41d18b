"""Provisioning on libvirt's test driver: clones of base images, dynamic memory, reconfigure, address answers.

The test driver's storage pool records volumes (with their backing store) and copies pool volumes, but cannot
upload into a volume or resize one: its declared features say so, and these tests hold it to them.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from polyvisor import Connection, DiskSpec, Feature, NotFoundError, UnsupportedError, ValidationError, VMSpec
from polyvisor.errors import InvalidStateError
from polyvisor.provisioning import CloudInit
from polyvisor_libvirt.backend import LibvirtBackend

MIB = 1024 * 1024


def _volumes(backend: LibvirtBackend) -> list[str]:
    return sorted(vol for pool in backend._client.conn.listAllStoragePools() for vol in pool.listVolumes())


@pytest.fixture(autouse=True)
def _clean(conn: Connection, backend: LibvirtBackend) -> Iterator[None]:
    # test:///default lives as long as some connection in the process is open: leave it as found.
    volumes = set(_volumes(backend))
    vms = {vm.uuid for vm in conn.list()}
    yield
    for vm in conn.list():
        if vm.uuid not in vms:
            conn.vm(vm.uuid).ensure("stopped", force=True)
            conn.vm(vm.uuid).delete(storage=True)
    for pool in backend._client.conn.listAllStoragePools():
        for name in set(pool.listVolumes()) - volumes:
            pool.storageVolLookupByName(name).delete(0)


def _base_volume(backend: LibvirtBackend, size_mib: int = 64) -> str:
    pool = backend._client.conn.storagePoolLookupByName("default-pool")
    xml = f"<volume><name>base.qcow2</name><capacity unit='MiB'>{size_mib}</capacity>"
    xml += "<target><format type='qcow2'/></target></volume>"
    path: str = pool.createXML(xml, 0).path()
    return path


def _qcow2_file(path: Path, size_mib: int) -> str:
    header = b"QFI\xfb" + struct.pack(">I", 3) + bytes(16) + struct.pack(">Q", size_mib * MIB)
    path.write_bytes(header.ljust(4096, b"\0"))
    return str(path)


def _volume_xml(backend: LibvirtBackend, path: str) -> ET.Element:
    return ET.fromstring(backend._client.conn.storageVolLookupByPath(path).XMLDesc(0))


def test_the_test_driver_declares_what_its_storage_and_domains_allow(conn: Connection) -> None:
    caps = conn.capabilities
    for feature in (
        Feature.DISK_CLONE_LINKED,
        Feature.DISK_CLONE_COPY,
        Feature.RECONFIGURE,
        Feature.RECONFIGURE_LIVE_CPUS,
        Feature.RECONFIGURE_LIVE_MEMORY,
        Feature.DYNAMIC_MEMORY,
    ):
        assert caps.supports(feature), feature
    for feature in (Feature.CLOUD_INIT, Feature.DISK_RESIZE, Feature.MEMORY_BUFFER):
        assert not caps.supports(feature), feature
    assert conn.backend.address_sources == ("agent", "lease", "arp")


def test_linked_clones_are_overlays_owned_by_their_vm_and_delete_keeps_the_base(
    conn: Connection, backend: LibvirtBackend
) -> None:
    base = _base_volume(backend)
    one = conn.create(VMSpec(name="one", disks=[DiskSpec(image=base, clone="linked")]))
    two = conn.create(VMSpec(name="two", disks=[DiskSpec(image=base, clone="linked", size_mib=128)]))
    overlays = [one.info().extra["owned_volumes"][0], two.info().extra["owned_volumes"][0]]
    assert base not in overlays
    assert len(set(overlays)) == 2
    for overlay, capacity in zip(overlays, (64, 128), strict=True):
        xml = _volume_xml(backend, overlay)
        assert xml.findtext("backingStore/path") == base
        assert xml.find("backingStore/format").get("type") == "qcow2"  # type: ignore[union-attr]
        assert xml.find("target/format").get("type") == "qcow2"  # type: ignore[union-attr]
        assert int(xml.findtext("capacity", "0")) == capacity * MIB
    domain = ET.fromstring(backend._client.conn.lookupByUUIDString(one.uuid).XMLDesc(0))
    assert domain.find("devices/disk/source").get("file") == overlays[0]  # type: ignore[union-attr]

    one.delete(storage=True)
    names = _volumes(backend)
    assert "base.qcow2" in names
    assert Path(overlays[1]).name in names
    assert Path(overlays[0]).name not in names
    two.delete(storage=True)
    assert "base.qcow2" in _volumes(backend)
    assert not {Path(overlay).name for overlay in overlays} & set(_volumes(backend))


def test_a_copy_of_a_pool_volume_is_independent(conn: Connection, backend: LibvirtBackend) -> None:
    base = _base_volume(backend)
    vm = conn.create(VMSpec(name="copy", disks=[DiskSpec(image=base, clone="copy")]))
    copy = vm.info().extra["owned_volumes"][0]
    xml = _volume_xml(backend, copy)
    assert xml.find("backingStore/path") is None
    assert int(xml.findtext("capacity", "0")) == 64 * MIB
    vm.delete(storage=True)
    assert "base.qcow2" in _volumes(backend)
    assert Path(copy).name not in _volumes(backend)


def test_a_grown_copy_of_a_pool_volume_needs_no_resize(conn: Connection, backend: LibvirtBackend) -> None:
    # The test driver cannot resize a volume; the copy is made at the size asked for.
    vm = conn.create(VMSpec(name="grown", disks=[DiskSpec(image=_base_volume(backend), clone="copy", size_mib=96)]))
    xml = _volume_xml(backend, vm.info().extra["owned_volumes"][0])
    assert int(xml.findtext("capacity", "0")) == 96 * MIB


def test_a_linked_clone_of_a_local_file(conn: Connection, backend: LibvirtBackend, tmp_path: Path) -> None:
    base = _qcow2_file(tmp_path / "base.qcow2", 32)
    vm = conn.create(VMSpec(name="file", disks=[DiskSpec(image=base, clone="linked", size_mib=48)]))
    xml = _volume_xml(backend, vm.info().extra["owned_volumes"][0])
    assert xml.findtext("backingStore/path") == base
    assert int(xml.findtext("capacity", "0")) == 48 * MIB


def test_bad_bases_fail_naming_the_path_and_leave_nothing(
    conn: Connection, backend: LibvirtBackend, tmp_path: Path
) -> None:
    base = _base_volume(backend)
    before = _volumes(backend)
    vms = [vm.name for vm in conn.list()]
    missing = str(tmp_path / "missing.qcow2")
    junk = tmp_path / "notes.txt"
    junk.write_text("not a disk\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases: list[tuple[DiskSpec, type[Exception], str]] = [
        (DiskSpec(image=missing, clone="linked"), NotFoundError, missing),
        (DiskSpec(image=str(junk), clone="linked"), ValidationError, str(junk)),
        (DiskSpec(image=str(folder), clone="copy"), ValidationError, str(folder)),
        (DiskSpec(image=base, clone="linked", size_mib=32), ValidationError, "32 MiB but the base image"),
        (DiskSpec(image=base, clone="linked", disk_format="raw"), ValidationError, "not raw"),
    ]
    for disk, error, text in cases:
        # A first disk that is made, then the bad one: the made one is deleted again.
        spec = VMSpec(name="bad", disks=[DiskSpec(image=base, clone="linked"), disk])
        with pytest.raises(error) as caught:
            conn.create(spec)
        assert text in str(caught.value)
        assert _volumes(backend) == before
        assert [vm.name for vm in conn.list()] == vms


def test_a_copy_of_a_file_needs_an_upload_the_test_driver_lacks(
    conn: Connection, backend: LibvirtBackend, tmp_path: Path
) -> None:
    base = _qcow2_file(tmp_path / "base.qcow2", 16)
    before = _volumes(backend)
    with pytest.raises(UnsupportedError) as caught:
        conn.create(VMSpec(name="up", disks=[DiskSpec(image=base, clone="copy")]))
    assert caught.value.feature is Feature.DISK_CLONE_COPY
    assert _volumes(backend) == before
    with pytest.raises(UnsupportedError) as refused:
        conn.create(VMSpec(name="ci", cloud_init=CloudInit(instance_id="i")))
    assert refused.value.feature is Feature.CLOUD_INIT


def test_dynamic_memory_is_reported_and_bounds_reconfigure(conn: Connection) -> None:
    vm = conn.create(VMSpec(name="dyn", memory_mib=512, dynamic_memory={"minimum_mib": 256, "maximum_mib": 1024}))
    info = vm.info()
    assert info.memory_mib == 512
    assert info.details is not None
    assert info.details.dynamic_memory is not None
    assert (info.details.dynamic_memory.minimum_mib, info.details.dynamic_memory.maximum_mib) == (256, 1024)
    with pytest.raises(ValidationError, match="at most 1024 MiB"):
        vm.reconfigure(memory_mib=2048)
    with pytest.raises(ValidationError, match="minimum of 256 MiB"):
        vm.reconfigure(memory_mib=128)
    assert vm.reconfigure(memory_mib=768).memory_mib == 768  # the startup memory, within the range
    vm.start()
    assert vm.reconfigure(memory_mib=300).memory_mib == 300  # the balloon, live
    with pytest.raises(ValidationError, match="minimum of 256 MiB"):
        vm.reconfigure(memory_mib=200)


def test_reconfigure_cold_redefines_and_live_stays_within_the_maximum(conn: Connection) -> None:
    vm = conn.create(VMSpec(name="size", cpus=2, memory_mib=256))
    info = vm.reconfigure(cpus=4, memory_mib=512)
    assert (info.cpus, info.memory_mib) == (4, 512)
    assert info.extra["max_cpus"] == 4
    vm.start()
    assert vm.reconfigure(cpus=3).cpus == 3
    with pytest.raises(ValidationError, match="at most 4 vCPU"):
        vm.reconfigure(cpus=5)
    with pytest.raises(ValidationError, match="at most 512 MiB"):
        vm.reconfigure(memory_mib=1024)
    assert vm.reconfigure(memory_mib=384).memory_mib == 384
    with pytest.raises(InvalidStateError):
        vm.reconfigure(cpus=2, live=False)
    with pytest.raises(UnsupportedError) as caught:
        vm.resize_disk("vda", 10)
    assert caught.value.feature is Feature.DISK_RESIZE


def test_address_answers_come_per_source(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.vm("test")
    answers = backend.address_answers(vm.uuid, ("agent", "lease", "arp"))
    assert [a.source for a in answers] == ["agent", "lease", "arp"]
    assert all(a.addresses and not a.detail for a in answers)  # the test driver's fake addresses
    address = vm.wait_for_address(timeout=5)
    assert (address.source, address.address) == ("agent", "192.168.122.3")
    assert vm.wait_for_address(timeout=5, sources=["arp"]).source == "arp"


def test_an_empty_answer_says_which_nic_has_no_lease(conn: Connection, backend: LibvirtBackend) -> None:
    # The test driver always answers with addresses; an empty answer is checked against a domain that has none.
    from polyvisor_libvirt.addresses import Addresses

    class Quiet:
        def __init__(self, dom: libvirt.virDomain) -> None:
            self._dom = dom

        def interfaceAddresses(self, _source: int, _flags: int) -> dict[str, object]:
            return {}

        def __getattr__(self, name: str) -> object:
            return getattr(self._dom, name)

    dom = backend._client.conn.lookupByName("test")
    addresses = Addresses(backend._client)
    backend._client.domain = lambda _ref: Quiet(dom)  # type: ignore[method-assign,assignment,return-value]
    answers = addresses.address_answers(dom.UUIDString(), ("agent", "lease", "arp"))
    assert answers[0].detail == "agent answered with no addresses"
    assert answers[1].detail.startswith("no lease for aa:bb:cc:dd:ee:ff")
    assert answers[2].detail == "no ARP entry for aa:bb:cc:dd:ee:ff"


@pytest.fixture
def second_pool(backend: LibvirtBackend, tmp_path: Path) -> Iterator[libvirt.virStoragePool]:
    """A second active pool, so the host has two and none is called "default"."""
    xml = f"<pool type='dir'><name>images-b</name><target><path>{tmp_path}</path></target></pool>"
    pool = backend._client.conn.storagePoolCreateXML(xml, 0)
    yield pool
    for name in pool.listVolumes():
        pool.storageVolLookupByName(name).delete(0)
    pool.destroy()


def test_a_clone_without_a_pool_goes_beside_its_base_when_no_pool_is_default(
    conn: Connection, backend: LibvirtBackend, second_pool: libvirt.virStoragePool
) -> None:
    xml = "<volume><name>base-b.qcow2</name><capacity unit='MiB'>32</capacity><target><format type='qcow2'/></target>"
    base = second_pool.createXML(xml + "</volume>", 0).path()
    vm = conn.create(VMSpec(name="beside", disks=[DiskSpec(image=base, clone="linked")]))
    overlay = vm.info().extra["owned_volumes"][0]
    assert Path(overlay).name in second_pool.listVolumes()
    assert backend._client.conn.storageVolLookupByPath(overlay).storagePoolLookupByVolume().name() == "images-b"
    vm.delete(storage=True)


def test_a_clone_of_a_plain_file_with_two_pools_and_no_default_names_the_pools(
    conn: Connection, backend: LibvirtBackend, second_pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    base = _qcow2_file(tmp_path / "plain.qcow2", 16)
    before = _volumes(backend)
    with pytest.raises(NotFoundError) as raised:
        conn.create(VMSpec(name="nowhere", disks=[DiskSpec(image=base, clone="copy")]))
    assert "default-pool, images-b" in str(raised.value)
    assert "disk.pool" in str(raised.value)
    assert _volumes(backend) == before
    assert "nowhere" not in {vm.name for vm in conn.list()}
