"""The backend against the loopback Windows/Hyper-V host, through polyvisor.connect() and real pypsrp/pywinrm."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import (
    AuthenticationError,
    BackendError,
    ConnectionError,
    NotFoundError,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)

pytestmark = pytest.mark.loopback

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def test_plugin_is_registered() -> None:
    assert "hyperv" in polyvisor.schemes()


def test_lifecycle(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create({"name": vm_name, "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 64}]})
    try:
        assert conn.vm(vm_name) == vm
        assert conn.vm(vm.uuid).name() == vm_name
        info = vm.info()
        assert (info.cpus, info.memory_mib, info.state) == (2, 512, PowerState.STOPPED)
        assert vm.start().state is PowerState.RUNNING
        assert vm.pause().state is PowerState.PAUSED
        assert vm.resume().state is PowerState.RUNNING
        assert vm.reset().state is PowerState.RUNNING
        assert vm.save().state is PowerState.SAVED
        assert vm.discard_saved_state().state is PowerState.STOPPED
        vm.start()
        assert vm.shutdown().state is PowerState.STOPPED
        vm.start()
        assert vm.stop().state is PowerState.STOPPED
    finally:
        vm.delete(storage=True, force=True)
    assert not conn.exists(vm.uuid)


def test_create_uefi_with_devices(conn: polyvisor.Connection, vm_name: str) -> None:
    switch = conn.networks()[0].name
    vm = conn.create(
        {
            "name": vm_name,
            "firmware": "uefi",
            "secure_boot": True,
            "disks": [{"size_mib": 64}],
            "nics": [{"network": switch, "mac": "00:15:5d:aa:bb:cc"}],
        }
    )
    try:
        assert vm.info().extra["generation"] == 2
        assert vm.attach_disk({"size_mib": 16}, live=False).startswith("SCSI:")
        mac = vm.attach_nic({"network": switch})
        assert mac.startswith("00:15:5d:")
        vm.detach_nic(mac)
        vm.detach_nic("00:15:5d:aa:bb:cc")
        with pytest.raises(NotFoundError):
            vm.detach_nic(mac)
    finally:
        vm.delete(storage=True)


def test_delete_with_storage_removes_the_disk_files(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    files = loopback_http.engine.host.files
    before = set(files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    vm.attach_disk({"size_mib": 16}, live=False)
    assert len(set(files.paths()) - before) == 2
    vm.delete(storage=True)
    assert set(files.paths()) - before == set()


def _disk_of(loopback: Any, vm: polyvisor.VM) -> str:
    path = loopback.engine.host.get_vm(uuid.UUID(vm.uuid)).config.hard_drives[0].path
    assert path is not None
    return str(path)


def test_delete_with_storage_removes_every_checkpoint_disk(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    files = loopback_http.engine.host.files
    before = set(files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    base = _disk_of(loopback_http, vm)
    vm.snapshot("first")
    vm.revert("first")
    vm.snapshot("second")
    mine = set(files.paths()) - before
    # The base, the disk "second" reads from and the one the VM writes to: two of them differencing disks.
    assert len(mine) == 3
    assert sorted(str(files.get(path).vhd_type) for path in mine) == ["Differencing", "Differencing", "Dynamic"]
    assert _disk_of(loopback_http, vm) != base
    vm.delete(storage=True)
    assert set(files.paths()) - before == set()


def test_delete_without_storage_keeps_every_disk(conn: polyvisor.Connection, loopback_http: Any, vm_name: str) -> None:
    files = loopback_http.engine.host.files
    before = set(files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    vm.snapshot("first")
    mine = set(files.paths()) - before
    assert len(mine) == 2
    vm.delete(storage=False)
    assert set(files.paths()) - before == mine
    for path in mine:
        files.remove(path)


def test_delete_with_storage_keeps_disks_another_vm_uses(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = loopback_http.engine.host
    before = set(host.files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}, {"size_mib": 16}]})
    vm.snapshot("first")
    direct = _disk_of(loopback_http, vm)  # the .avhdx the VM writes to, whose parent is the first disk
    base = host.disks.get_vhd(direct).parent_path
    second = [d.path for d in host.get_vm(uuid.UUID(vm.uuid)).config.hard_drives][1]
    second_base = host.disks.get_vhd(second).parent_path
    # One VM attaches the first disk itself; another reaches the second one only through its differencing disk.
    sharing = conn.create({"name": vm_name + "-a", "disks": [{"image": base}]})
    child = host.disks.new_vhd(
        second_base.replace(".vhdx", "-child.vhdx"), None, vhd_type="Differencing", parent_path=second_base
    ).path
    chained = conn.create({"name": vm_name + "-b", "disks": [{"image": child}]})
    try:
        vm.delete(storage=True)
        assert set(host.files.paths()) - before == {base, second_base, child}
    finally:
        sharing.delete(storage=True)
        chained.delete(storage=True)
    # The parent of a differencing disk that is no checkpoint's is a base image: delete(storage=True) leaves it.
    assert set(host.files.paths()) - before == {second_base}
    host.disks.remove_file(second_base)


def test_delete_with_storage_names_the_files_it_could_not_remove(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    host = loopback_http.engine.host
    before = set(host.files.paths())
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    vm.snapshot("first")
    vm.snapshot("second")
    base = host.disks.get_vhd(host.disks.get_vhd(_disk_of(loopback_http, vm)).parent_path).parent_path
    host.disks.hold_file(base)  # another process (a backup agent, say) keeps it open
    try:
        with pytest.raises(BackendError) as info:
            vm.delete(storage=True)
        assert base in str(info.value)
        assert "by hand" in str(info.value)
        assert not conn.exists(vm.uuid)
        assert set(host.files.paths()) - before == {base}  # every other file was still removed
    finally:
        host.disks.hold_file(base, held=False)
        host.disks.remove_file(base)


def test_failed_create_leaves_nothing_behind(conn: polyvisor.Connection, vm_name: str) -> None:
    before = {vm.uuid for vm in conn.list()}
    with pytest.raises(polyvisor.PolyvisorError):
        conn.create({"name": vm_name, "disks": [{"size_mib": 64}], "nics": [{"network": "no-such-switch"}]})
    assert {vm.uuid for vm in conn.list()} == before
    assert not conn.exists(vm_name)


def test_snapshots(conn: polyvisor.Connection, vm_name: str) -> None:
    vm = conn.create({"name": vm_name, "disks": [{"size_mib": 64}]})
    try:
        vm.snapshot("cold")
        vm.start()
        hot = vm.snapshot("hot", memory=True)
        assert hot.has_memory
        assert hot.parent == "cold"
        tree = vm.snapshots()
        assert tree.current is not None
        assert tree.current.name == "hot"
        assert [s.name for s in tree.roots] == ["cold"]
        vm.stop()
        assert vm.revert("hot").state is PowerState.RUNNING
        vm.stop()
        assert vm.revert("cold").state is PowerState.STOPPED
        with pytest.raises(UnsupportedError):
            vm.snapshot("described", description="text")
        vm.delete_snapshot("cold", children=True)
        assert len(vm.snapshots()) == 0
    finally:
        vm.delete(storage=True)


def test_duplicate_checkpoint_names_are_never_acted_on_together(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # Hyper-V allows duplicate checkpoint names (a human, or another tool, may have made them): a verb by name
    # must not delete or restore every checkpoint of that name.
    vm = conn.create({"name": vm_name})
    host = loopback_http.engine.host
    try:
        vm.snapshot("base")
        vm.snapshot("twin")
        host.checkpoints.checkpoint_vm(uuid.UUID(vm.uuid), "twin")
        with pytest.raises(ValidationError, match="twin"):
            vm.delete_snapshot("twin")
        with pytest.raises(ValidationError, match="twin"):
            vm.revert("twin")
        assert [snap.name for snap in host.checkpoints.find_snapshots(uuid.UUID(vm.uuid))] == ["base", "twin", "twin"]
        vm.delete_snapshot("base")
        assert [snap.name for snap in host.checkpoints.find_snapshots(uuid.UUID(vm.uuid))] == ["twin", "twin"]
    finally:
        vm.delete()


HOSTILE_NAMES = [
    "quote ' \" name",
    "subexpr $(Remove-VM -Name * -Force)",
    "back`tick; semi; & amp | pipe",
    "unicode ✓ 漢字 🙂",
    "wild*card?[x]",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_and_labels_round_trip(conn: polyvisor.Connection, vm_name: str, name: str) -> None:
    canary = conn.create({"name": vm_name})
    labels = {
        "quote": "'\"",
        "subexpr": "$(Stop-VM * -TurnOff -Force)",
        "newline": "line1\nline2\r\n",
        "marker": "----- end polyvisor labels -----",
        "big": "x" * 10_000,
    }
    description = "human text\n$(Get-VM)\n`"
    vm = conn.create({"name": name, "labels": labels, "description": description})
    try:
        assert conn.vm(name) == vm
        info = vm.info()
        assert (info.name, dict(info.labels), info.description) == (name, labels, description)
        vm.snapshot(name)
        assert name in vm.snapshots()
        vm.delete_snapshot(name)
        assert dict(vm.update_labels(remove=["big"])) == {k: v for k, v in labels.items() if k != "big"}
        assert vm.info().description == description
        assert canary.info().state is PowerState.STOPPED  # nothing was executed against other VMs
    finally:
        vm.delete()
        canary.delete()


def test_over_https_with_the_test_ca(uri_for: UriFor, loopback_https: Any, transport: str, connect: Connect) -> None:
    conn = connect(uri_for(loopback_https, transport))
    assert conn.host_info().hypervisor == "hyperv"


def test_bad_certificate(loopback_https: Any, transport: str, connect: Connect) -> None:
    uri = f"hyperv://hv-admin@127.0.0.1:{loopback_https.port}/?transport={transport}"
    with pytest.raises(ConnectionError, match="ca_path") as info:
        connect(uri).host_info()
    assert not isinstance(info.value, AuthenticationError)


def test_wrong_password(uri_for: UriFor, password: str, loopback_http: Any, transport: str, connect: Connect) -> None:
    with pytest.raises(AuthenticationError) as info:
        connect(uri_for(loopback_http, transport), password="Wrong-Pa55word").list()
    assert "Wrong-Pa55word" not in str(info.value)
    assert password not in str(info.value)


def test_connection_refused(transport: str, connect: Connect) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionError):
        connect(f"hyperv://hv-admin@127.0.0.1:{port}/?scheme=http&transport={transport}").list()


def test_dropped_connection_recovers(uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect) -> None:
    conn = connect(uri_for(loopback_private, transport))
    conn.list()
    loopback_private.drop_connections()
    # The operation in flight may fail; the next one must work on a fresh session.
    with contextlib.suppress(ConnectionError):
        conn.list()
    assert conn.host_info().hypervisor == "hyperv"


def test_session_dropped_by_the_host_is_reopened(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    conn.list()
    # Windows deletes a shell or runspace pool that idled past IdleTimeout (2 hours by default).
    assert loopback_private.drop_shells() == 1
    assert conn.host_info().hypervisor == "hyperv"  # a request that never started is retried on a new session
    assert loopback_private.open_shells == 1


def test_stalled_reply_is_retried(uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect) -> None:
    conn = connect(uri_for(loopback_private, transport, operation_timeout="1", read_timeout="2"))
    conn.list()
    loopback_private.stall_next()  # one Receive waits its OperationTimeout out and faults with TimedOut
    assert conn.host_info().hypervisor == "hyperv"


def test_operation_timeout(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport, operation_timeout="1", read_timeout="3", command_timeout="2"))
    vm = conn.create({"name": vm_name})
    try:
        vm.start()
        loopback_private.engine.host.guests.set_guest_responds_to_shutdown(uuid.UUID(vm.uuid), False)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            vm.shutdown(timeout=1)
        assert time.monotonic() - started < 15
        assert vm.state() is PowerState.RUNNING  # left as it was
    finally:
        vm.stop()
        vm.delete()


def test_one_verb_on_a_warm_connection_needs_few_requests(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    # One pipeline: PSRP sends Command and one Receive (output and CommandState Done together, as Windows answers a
    # quick pipeline); the WinRM shell adds Send (stdin) and Signal Terminate (pywinrm's cleanup_command).
    per_pipeline = 2 if transport == "psrp" else 4
    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})
    try:
        backend = conn.backend
        before = loopback_private.requests_served
        backend.status(vm.uuid)
        assert loopback_private.requests_served - before == per_pipeline
        before = loopback_private.requests_served
        conn.list()
        assert loopback_private.requests_served - before == per_pipeline
        # A whole verb through the core: state check, the cmdlet, then confirming the target state. The cmdlet's
        # pipeline reads the state it left, which answers the confirmation: two pipelines in all.
        vm.start()
        connections = loopback_private.connections_opened
        for verb in (vm.pause, vm.resume, vm.stop, vm.start, vm.save, vm.start, vm.reset, vm.stop):
            before = loopback_private.requests_served
            verb()
            assert loopback_private.requests_served - before <= 2 * per_pipeline, verb.__name__
        assert loopback_private.connections_opened == connections, "a warm connection opens no new connection"
        assert loopback_private.open_shells == 1, "one pool / shell serves every verb (none subscribes to events)"
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()


def test_the_state_a_verb_read_is_used_once_and_never_after_a_change(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    other = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name})
    try:
        vm.start()
        assert vm.state() is PowerState.RUNNING
        # Another client changes the VM: this connection's next read asks the host.
        other.vm(vm.uuid).stop()
        assert vm.state() is PowerState.STOPPED
        before = loopback_private.requests_served
        conn.backend.status(vm.uuid)
        assert loopback_private.requests_served > before, "a status query with no verb before it asks the host"
    finally:
        vm.delete()


def test_capabilities_are_declared(conn: polyvisor.Connection) -> None:
    from polyvisor_hyperv.backend import HyperVBackend

    assert HyperVBackend.static_features() == {
        Feature.CREATE,
        Feature.EVENTS,
        Feature.PAUSE,
        Feature.SAVE,
        Feature.RESET,
        Feature.REBOOT,
        Feature.SHUTDOWN_AGENT,
        Feature.SNAPSHOTS,
        Feature.SNAPSHOT_MEMORY,
        Feature.LABELS,
        Feature.DELETE_STORAGE,
        Feature.DISK_ATTACH,
        Feature.DISK_HOTPLUG,
        Feature.NIC_ATTACH,
        Feature.NIC_HOTPLUG,
        Feature.GUEST_ADDRESSES,
        Feature.UEFI,
        Feature.SECURE_BOOT,
        Feature.NETWORKS,
        Feature.DISK_CLONE_LINKED,
        Feature.DISK_CLONE_COPY,
        Feature.DISK_RESIZE,
        Feature.CLOUD_INIT,
        Feature.RECONFIGURE,
        Feature.RECONFIGURE_LIVE_MEMORY,
        Feature.DYNAMIC_MEMORY,
        Feature.MEMORY_BUFFER,
        Feature.READINESS,
        Feature.STORAGE,
        Feature.IMAGE_UPLOAD,
        Feature.IMAGE_DOWNLOAD,
        Feature.POOL_WRITE,
        Feature.VOLUME_WRITE,
        Feature.VOLUME_RESIZE,
        Feature.NETWORK_WRITE,
        Feature.NETWORK_ISOLATED,
        Feature.NETWORK_INTERNAL,
        Feature.NETWORK_EXTERNAL,
        Feature.STATS,
        Feature.GRAPHICS,
        Feature.SCREENSHOT,
        Feature.TPM,
        Feature.NESTED_VIRTUALIZATION,
        Feature.HOST_DEVICES,
        Feature.PCI_PASSTHROUGH,
        Feature.NAT_FORWARDING,
    }
    assert Feature.RECONFIGURE_LIVE_CPUS not in HyperVBackend.static_features()
    assert Feature.USB_PASSTHROUGH not in HyperVBackend.static_features()  # Discrete Device Assignment is PCIe only
    assert conn.capabilities.features == HyperVBackend.static_features()
    assert conn.capabilities.backend == "Hyper-V"
    assert conn.supports(Feature.EVENTS)  # native: a watcher pipeline (polyvisor_hyperv.events)


def test_listing_carries_details_from_one_get_vm(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport))
    vm = conn.create({"name": vm_name, "cpus": 2, "memory_mib": 256, "labels": {"team": "a"}})
    try:
        before = loopback_private.requests_served
        (info,) = [entry for entry in conn.list(details=True) if entry.uuid == vm.uuid]
        assert loopback_private.requests_served - before <= 5, "details come with the listing"
        assert (info.cpus, info.memory_mib, dict(info.labels)) == (2, 256, {"team": "a"})
        assert conn.vm(info) == vm
        assert vm.labels() == {"team": "a"}
        assert dict(vm.update_labels({"env": "x"}, remove=["team"])) == {"env": "x"}
    finally:
        vm.delete()


def test_reboot_shuts_the_guest_down_and_starts_it_again(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    conn = connect(uri_for(loopback_private, transport, operation_timeout="1", read_timeout="3", command_timeout="2"))
    vm = conn.create({"name": vm_name})
    host = loopback_private.engine.host
    vm_id = uuid.UUID(vm.uuid)
    try:
        vm.start()
        first_boot = host.get_vm(vm_id).started_at
        assert vm.reboot().state is PowerState.RUNNING
        assert host.get_vm(vm_id).started_at > first_boot, "the VM was powered on again"
        # It is the guest that shuts down (no power-off): a guest that ignores the request is left running.
        host.guests.set_guest_responds_to_shutdown(vm_id, False)
        second_boot = host.get_vm(vm_id).started_at
        with pytest.raises(TimeoutError):
            vm.reboot()
        assert vm.state() is PowerState.RUNNING
        assert host.get_vm(vm_id).started_at == second_boot
    finally:
        vm.stop()
        vm.delete()
