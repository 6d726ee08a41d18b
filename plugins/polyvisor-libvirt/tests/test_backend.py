"""The backend against libvirt's test driver: create/rollback, hostile input, listing cost, verbs, events."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import libvirt
import pytest

import polyvisor
from polyvisor import (
    Connection,
    DiskSpec,
    EventKind,
    NicSpec,
    NotFoundError,
    PowerState,
    TimeoutError,
    UnsupportedError,
    ValidationError,
    VMSpec,
)
from polyvisor.backend import Deadline
from polyvisor_libvirt.backend import LibvirtBackend
from polyvisor_libvirt.domainxml import LABELS_NS, SNAPSHOT_NS

HOSTILE = 'it\'s "q" <b> & <!-- ]]> x'
LABELS = {"nl": "a\nb", "tab": "a\tb", "cr": "a\rb", "xml": "<x a='1'/> & ]]>", "big": "v" * 10240}


def _pool_volumes(backend: LibvirtBackend) -> list[str]:
    return sorted(vol for pool in backend._client.conn.listAllStoragePools() for vol in pool.listVolumes())


def test_hostile_name_and_labels_round_trip_without_injection(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name=HOSTILE, labels=LABELS, description=HOSTILE + "\nline2"))
    info = conn.vm(vm.uuid).info()
    assert info.name == HOSTILE
    assert dict(info.labels) == LABELS
    assert info.description == HOSTILE + "\nline2"
    root = ET.fromstring(backend._client.conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
    assert root.findtext("name") == HOSTILE
    assert [child.tag for child in root.find("metadata")] == [f"{{{LABELS_NS}}}labels"]  # type: ignore[union-attr]
    assert len(root.findall("devices/*")) == 0  # nothing smuggled in through a value
    assert [info.name for info in conn.list()].count(HOSTILE) == 1


def test_set_labels_replaces_all_and_survives_listing(conn: Connection) -> None:
    vm = conn.create(VMSpec(name="lab", labels={"a": "1"}))
    assert dict(vm.set_labels({"b": "x\ny"})) == {"b": "x\ny"}
    listed = next(info for info in conn.list(details=True) if info.uuid == vm.uuid)
    assert dict(listed.labels) == {"b": "x\ny"}
    assert dict(vm.set_labels({})) == {}


def test_create_with_disks_nic_cdrom_and_kernel(conn: Connection, backend: LibvirtBackend, tmp_path: Path) -> None:
    iso = tmp_path / "boot.iso"
    iso.write_bytes(b"")
    volumes = _pool_volumes(backend)
    spec = VMSpec(
        name="full",
        cpus=2,
        memory_mib=256,
        disks=[DiskSpec(size_mib=16), DiskSpec(size_mib=8, disk_format="raw", bus="sata")],
        nics=[NicSpec(network="default", mac="52:54:00:00:00:01")],
        cdrom=str(iso),
        boot_order=["cdrom", "disk"],
        kernel={"kernel": str(iso), "cmdline": "console=ttyS0"},
    )
    vm = conn.create(spec)
    info = vm.info()
    assert (info.cpus, info.memory_mib) == (2, 256)
    root = ET.fromstring(backend._client.conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
    assert [d.get("dev") for d in root.findall("devices/disk/target")] == ["vda", "sda", "hda"]
    assert [b.get("dev") for b in root.findall("os/boot")] == ["cdrom", "hd"]
    assert root.findtext("os/cmdline") == "console=ttyS0"
    assert root.find("devices/interface/mac").get("address") == "52:54:00:00:00:01"  # type: ignore[union-attr]
    assert len(_pool_volumes(backend)) == len(volumes) + 2
    vm.delete(storage=True)
    assert _pool_volumes(backend) == volumes


def test_delete_keeps_images_the_user_brought(conn: Connection, backend: LibvirtBackend) -> None:
    pool = backend._client.conn.listAllStoragePools()[0]
    volumes = _pool_volumes(backend)
    volume = pool.createXML("<volume><name>mine.qcow2</name><capacity unit='MiB'>1</capacity></volume>", 0)
    try:
        vm = conn.create(VMSpec(name="img", disks=[DiskSpec(image=volume.path()), DiskSpec(size_mib=4)]))
        vm.delete(storage=True)
        assert _pool_volumes(backend) == sorted([*volumes, "mine.qcow2"])
    finally:
        volume.delete(0)


def test_failed_create_leaves_nothing(conn: Connection, backend: LibvirtBackend) -> None:
    # Other open test:///default connections of this process share the hypervisor: compare, don't expect empty.
    before = {info.uuid for info in conn.list()}
    volumes = _pool_volumes(backend)
    spec = VMSpec(name="rb", disks=[DiskSpec(size_mib=8), DiskSpec(size_mib=8, pool="no-such-pool")])
    with pytest.raises(NotFoundError, match="no-such-pool"):
        conn.create(spec)
    assert {info.uuid for info in conn.list()} == before
    assert _pool_volumes(backend) == volumes
    with pytest.raises(NotFoundError, match="no-such-net"):
        conn.create(VMSpec(name="rb", disks=[DiskSpec(size_mib=8)], nics=[NicSpec(network="no-such-net")]))
    assert _pool_volumes(backend) == volumes
    assert not conn.exists("rb")


def test_unsupported_accelerator_choice_on_the_test_driver(conn: Connection) -> None:
    with pytest.raises(UnsupportedError):
        conn.create(VMSpec(name="acc", accelerator="kvm"))


def test_lifecycle_and_saved_state(conn: Connection) -> None:
    vm = conn.create(VMSpec(name="life"))
    assert vm.start().state is PowerState.RUNNING
    assert vm.pause().reason == "user"
    vm.resume()
    saved = vm.save()
    assert (saved.state, saved.raw_state) == (PowerState.SAVED, "VIR_DOMAIN_SHUTOFF")
    assert vm.info().has_saved_state
    assert vm.start().state is PowerState.RUNNING
    assert vm.shutdown().state is PowerState.STOPPED


def test_a_vm_saved_while_paused_starts_running(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="paused-save"))
    vm.start()
    vm.pause()
    assert vm.save().state is PowerState.SAVED
    assert vm.start(timeout=10).state is PowerState.RUNNING
    # An image another client saved while paused, without asking for a running restore, too.
    vm.pause()
    backend._client.conn.lookupByUUIDString(vm.uuid).managedSave(libvirt.VIR_DOMAIN_SAVE_PAUSED)
    assert vm.state() is PowerState.SAVED
    assert vm.start(timeout=10).state is PowerState.RUNNING
    vm.stop()


def test_a_passed_deadline_is_checked_before_acting(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="late"))
    vm.start()
    expired = Deadline(0)
    for primitive in (backend.stop, backend.pause, backend.save, backend.reset):
        with pytest.raises(TimeoutError, match="left as the hypervisor has it"):
            primitive(vm.uuid, expired)
    with pytest.raises(TimeoutError):
        backend.snapshot_create(vm.uuid, "s", memory=True, description="", deadline=expired)
    assert vm.state() is PowerState.RUNNING
    assert len(vm.snapshots()) == 0
    vm.stop()


def test_snapshot_tree(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="snaps"))
    vm.snapshot("off")
    vm.start()
    # libvirt keeps a running VM's memory in any internal snapshot; polyvisor records that none was asked for,
    # so the snapshot reports no memory and reverting to it ends stopped, as on Hyper-V.
    disks_only = vm.snapshot("disk-only-while-running")
    assert (disks_only.has_memory, disks_only.state) == (False, PowerState.RUNNING)
    assert vm.state() is PowerState.RUNNING
    live = backend._client.conn.lookupByUUIDString(vm.uuid).XMLDesc(0)
    assert SNAPSHOT_NS not in live, "the marker lives in the snapshot, not in the domain"
    taken = vm.snapshot("on", memory=True, description="d")
    assert (taken.parent, taken.has_memory, taken.state) == ("disk-only-while-running", True, PowerState.RUNNING)
    tree = vm.snapshots()
    assert tree.current is not None
    assert tree.current.name == "on"
    assert vm.revert("disk-only-while-running").state is PowerState.STOPPED
    assert vm.revert("on").state is PowerState.RUNNING
    assert vm.revert("off").state is PowerState.STOPPED
    vm.delete_snapshot("off", children=True)
    assert len(vm.snapshots()) == 0


def test_cold_attach_and_detach(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="dev"))
    target = vm.attach_disk(DiskSpec(size_mib=4), live=False)
    mac = vm.attach_nic(NicSpec(network="default"), live=False)
    root = ET.fromstring(backend._client.conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
    assert [d.get("dev") for d in root.findall("devices/disk/target")] == [target]
    vm.detach_disk(target, live=False)
    vm.detach_nic(mac, live=False)
    root = ET.fromstring(backend._client.conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
    assert root.findall("devices/disk") == []
    assert root.findall("devices/interface") == []
    vm.delete(storage=True)
    assert _pool_volumes(backend) == []


def test_events_feed_wait_for_and_watch(conn: Connection, backend: LibvirtBackend) -> None:
    vm = conn.create(VMSpec(name="ev"))
    with conn.watch() as stream:
        # Another thread powers the VM on; wait_for wakes on the lifecycle event.
        threading.Timer(0.05, lambda: backend._client.conn.lookupByUUIDString(vm.uuid).create()).start()
        assert vm.wait_for("running", timeout=10).state is PowerState.RUNNING
        deadline = time.monotonic() + 10
        event = None
        while time.monotonic() < deadline:
            event = stream.get(timeout=deadline - time.monotonic())
            if event is not None and event.uuid == vm.uuid and event.kind == "state":
                break
    assert event is not None
    assert event.state is PowerState.RUNNING


class _Counting:
    """Wraps a libvirt object and counts calls that go to the driver (handles returned are wrapped too)."""

    # Read from the handle itself, no driver call (virDomainGetName/GetUUIDString/GetID, virConnectIsAlive).
    LOCAL = frozenset({"name", "UUIDString", "UUID", "ID", "isAlive"})

    def __init__(self, inner: Any, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value) or attr in self.LOCAL:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counts[attr] += 1
            return _wrap(value(*args, **kwargs), self._counts)

        return call


def _wrap(value: Any, counts: Counter[str]) -> Any:
    if isinstance(value, libvirt.virDomain):
        return _Counting(value, counts)
    if isinstance(value, list):
        return [_wrap(item, counts) for item in value]
    if isinstance(value, tuple):
        return tuple(_wrap(item, counts) for item in value)
    return value


def _domain_xml(name: str) -> str:
    root = ET.Element("domain", type="test")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory").text = "1024"
    ET.SubElement(ET.SubElement(root, "os"), "type").text = "hvm"
    return ET.tostring(root, encoding="unicode")


def _listing_cost(count: int) -> dict[str, int]:
    """Calls made by: a first listing, loading every VM's details, and a second listing after that."""
    import polyvisor

    with polyvisor.connect("test:///default") as conn:
        backend = conn.backend
        assert isinstance(backend, LibvirtBackend)
        raw = backend._client.conn
        prefix = f"bulk{count}-"
        with conn.watch() as events:
            for index in range(count):
                raw.defineXML(_domain_xml(f"{prefix}{index}"))
            # Each "defined" event invalidates cached definitions as it arrives; let them all arrive before
            # counting, or a late one would make the second listing re-read definitions it had just cached.
            defined = 0
            while defined < count:
                event = events.get(timeout=30)
                assert event is not None, f"only {defined} of {count} 'defined' events arrived"
                if event.kind is EventKind.DEFINED and event.name.startswith(prefix):
                    defined += 1
        counts: Counter[str] = Counter()
        backend._client.conn = _Counting(raw, counts)  # type: ignore[assignment]
        try:
            first = conn.list()
            listed = [(info.uuid, info.name, info.state) for info in first]
            cost = {"first_listing": sum(counts.values())}
            assert len(listed) >= count + 1
            counts.clear()
            assert all(info.details is None for info in first if info.name.startswith(prefix))
            counts.clear()
            mine = [info for info in conn.list(details=True) if info.name.startswith(prefix)]
            assert [info.memory_mib for info in mine] == [1] * count
            # Other domains of the shared test hypervisor (its stock "test" domain) are read too.
            others = sum(1 for info in first if info.details is None and not info.name.startswith(prefix))
            cost["details"] = counts["XMLDesc"] - others
            counts.clear()
            second = conn.list(details=True)
            assert sum(info.memory_mib for info in second if info.name.startswith(prefix)) == count
            cost["second_listing"] = sum(counts.values())
        finally:
            backend._client.conn = raw
            for index in range(count):
                raw.lookupByName(f"{prefix}{index}").undefine()
        return cost


def test_listing_cost_does_not_grow_with_the_number_of_vms() -> None:
    small = _listing_cost(10)
    large = _listing_cost(1000)
    # Names, UUIDs and states of every VM: a constant number of calls, whatever the number of VMs.
    assert small["first_listing"] == large["first_listing"] <= 3
    # Details need each domain's XML, read once on first access and then kept until libvirt reports a change.
    assert (small["details"], large["details"]) == (10, 1000)
    assert small["second_listing"] == large["second_listing"] <= 3


def test_the_test_driver_in_this_process_is_ephemeral(conn: Connection) -> None:
    assert conn.ephemeral is True


@pytest.mark.libvirtd
def test_the_test_driver_is_ephemeral_in_libvirtd_too() -> None:
    # libvirtd drops the test driver's VMs with its last connection, so the next task's process finds none.
    with polyvisor.connect("test+unix:///default") as conn:
        assert conn.ephemeral is True


@pytest.mark.libvirtd
def test_qemu_system_is_not_ephemeral() -> None:
    with polyvisor.connect("qemu:///system") as conn:
        assert conn.ephemeral is False


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"keepalive_interval": 0}, "keepalive_interval"),
        ({"keepalive_interval": 2.5}, "keepalive_interval"),
        ({"keepalive_count": -1}, "keepalive_count"),
        ({"keepalive_count": "3"}, "keepalive_count"),
        ({"keepalive_count": True}, "keepalive_count"),
    ],
)
def test_keepalive_options_are_checked_before_connecting(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        polyvisor.connect("test:///default", **options)
    assert caught.value.field == named
    assert "interval * (keepalive_count + 1)" in caught.value.message


def test_keepalive_options_are_accepted() -> None:
    with polyvisor.connect("test:///default", keepalive_interval=1, keepalive_count=0) as conn:
        assert conn.host_info().hypervisor == "libvirt/TEST"


def test_keepalive_cannot_be_changed_over_libssh() -> None:
    # Refused before connecting: nothing listens at that port, and no connection is attempted.
    with pytest.raises(ValidationError) as caught:
        polyvisor.connect("qemu+libssh://root@127.0.0.1:9/system", keepalive_interval=1)
    assert caught.value.field == "keepalive_interval"
    assert "qemu+ssh://" in caught.value.message
