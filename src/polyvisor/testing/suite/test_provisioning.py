"""Provisioning: disks cloned from a base image, cloud-init seeds, address and readiness waits, reconfigure and
disk resize.

Clone cases need a base image on the target (``--polyvisor-base-image``); the address case needs a guest that
gets an address (``--polyvisor-address-spec``); seeds are read back byte for byte where the target lets the kit
(the ``polyvisor_seed_reader`` fixture). Everything else runs wherever the capability is declared.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import ipaddress
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from polyvisor import (
    VM,
    AlreadyExistsError,
    Connection,
    Feature,
    InvalidStateError,
    NotFoundError,
    PowerState,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.provisioning import CloudInit
from polyvisor.provisioning.addresses import AddressFamily, usable
from polyvisor.testing.fixtures import SeedReader, SpecFactory, session_volume, unique_name
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]

_CLONE_FEATURES = {"linked": Feature.DISK_CLONE_LINKED, "copy": Feature.DISK_CLONE_COPY}
GROWN_CLONE_MIB = 4096
"""The size the second clone is grown to at creation; the base image must be smaller."""


def _fingerprint(path: str) -> tuple[str, int] | None:
    """The base image's digest and modification time when the test machine can read it (memory://, local qemu)."""
    local = Path(path)
    if not local.is_file():
        return None
    digest = hashlib.sha256()
    with local.open("rb") as image:
        for block in iter(lambda: image.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest(), local.stat().st_mtime_ns


# -- clones -----------------------------------------------------------------------------------------------------
def _clone_base(request: pytest.FixtureRequest, conn: Connection, mode: str) -> str:
    """The base image for a clone case, asked for only once the clone feature is known to be declared."""
    require(conn, _CLONE_FEATURES[mode])
    base = str(request.getfixturevalue("polyvisor_base_image"))
    session_volume(request.config, base)  # made for the session, on the first case that asks for it
    return base


@pytest.mark.parametrize("mode", ["linked", "copy"])
def test_two_clones_of_one_base_and_deleting_one_keeps_the_rest(
    request: pytest.FixtureRequest, polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, mode: str
) -> None:
    conn = polyvisor_connection
    base_image = _clone_base(request, conn, mode)
    before = _fingerprint(base_image)
    first = polyvisor_vm_factory(f"cl{mode[0]}", disks=[{"image": base_image, "clone": mode}])
    grown = {"image": base_image, "clone": mode, "size_mib": GROWN_CLONE_MIB}
    second = polyvisor_vm_factory(f"cl{mode[0]}", disks=[grown])
    assert first.start().state is PowerState.RUNNING
    first.stop()
    first.delete(storage=conn.supports(Feature.DELETE_STORAGE))
    assert not conn.exists(first.uuid)
    # The other clone is untouched: it still starts, and the base still makes new clones.
    assert second.start().state is PowerState.RUNNING
    second.stop()
    third = polyvisor_vm_factory(f"cl{mode[0]}", disks=[{"image": base_image, "clone": mode}])
    assert third.state() is PowerState.STOPPED
    if before is not None:
        assert _fingerprint(base_image) == before, "a clone wrote to its base image"


@pytest.mark.parametrize("mode", ["linked", "copy"])
def test_a_missing_base_is_not_found_and_nothing_is_created(
    request: pytest.FixtureRequest, polyvisor_connection: Connection, polyvisor_spec: SpecFactory, mode: str
) -> None:
    conn = polyvisor_connection
    base_image = _clone_base(request, conn, mode)
    missing = f"{base_image}.missing-{uuid.uuid4().hex[:8]}"  # next to the real one, on any OS
    name = unique_name("clm")
    before = {info.uuid for info in conn.list()}
    with pytest.raises(NotFoundError) as caught:
        conn.create(polyvisor_spec(name, disks=[{"size_mib": 8}, {"image": missing, "clone": mode}]))
    assert missing in str(caught.value), "the error names the missing base"
    assert not conn.exists(name)
    # No VM appeared (under any name). Only new ones count: on a shared host others delete theirs meanwhile.
    assert {info.uuid for info in conn.list()} - before == set()


# -- cloud-init seeds --------------------------------------------------------------------------------------------
HOSTILE_USER_DATA = (
    "#cloud-config\r\n"
    "runcmd:\n"
    '  - [sh, -c, "echo \'$(id)\' `uname` \\"q\\" <&> %s ${HOME} ünï cödé ✓ 🚀"]\n'
    'write_files: [{path: /tmp/x, content: "\\0 \\t ; DROP TABLE vms; --"}]\n'
    "\n\n   trailing spaces and no final newline   "
)


def _hostile_seed(name: str) -> CloudInit:
    return CloudInit(
        instance_id=f"iid-{name}-'\"$(x)`y`",
        local_hostname="kit-seed.example.test",  # a host name; hostile text goes in the other fields
        user_data=HOSTILE_USER_DATA,
        meta_data={"public-keys": ["ssh-ed25519 AAAA kit@'$(x)'"], "note": 'line\nbreak "quoted" \\ back'},
        network_config="version: 2\nethernets: {}\n",
        vendor_data='#!/bin/sh\necho "$@" > /dev/null; exit 0\n',
    )


def _seed_files(image: bytes) -> dict[str, bytes]:
    """A seed ISO's files by their Rock Ridge name, with its volume label under the key ``label``."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files = {"label": iso.pvd.volume_identifier.decode("ascii").rstrip().encode("ascii")}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode("utf-8")
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue()
    finally:
        iso.close()
    return files


def test_a_seed_carries_hostile_content_byte_for_byte_and_goes_with_the_vm(
    polyvisor_connection: Connection,
    polyvisor_vm_factory: VMFactory,
    polyvisor_seed_reader: SeedReader | None,
) -> None:
    require(polyvisor_connection, Feature.CLOUD_INIT)
    seed = _hostile_seed("seed")
    # No disks: the VM is deleted without its storage below, and a disk of the target's spec would be left behind.
    vm = polyvisor_vm_factory("seed", cloud_init=seed, disks=[])
    assert vm.state() is PowerState.STOPPED
    read = polyvisor_seed_reader(vm) if polyvisor_seed_reader is not None else None
    if read is not None:
        image = read()
        assert image is not None, "the VM's seed cannot be read"
        assert _seed_files(image) == {"label": b"cidata", **seed.files()}
    # The seed belongs to the VM: deleting the VM (even without its storage) removes it.
    vm.delete()
    assert not polyvisor_connection.exists(vm.uuid)
    if read is not None:
        assert read() is None, "the seed outlived its VM"


def test_a_seeded_vm_starts(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.CLOUD_INIT)
    vm = polyvisor_vm_factory("seedrun", cloud_init={"local_hostname": "kit-guest"})
    assert vm.start().state is PowerState.RUNNING


# -- address waits -----------------------------------------------------------------------------------------------
def test_wait_for_address_returns_a_usable_address(
    request: pytest.FixtureRequest, polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.GUEST_ADDRESSES)
    overrides: Mapping[str, Any] = request.getfixturevalue("polyvisor_address_overrides")
    vm = polyvisor_vm_factory("addr", **overrides)
    vm.start()
    address = vm.wait_for_address(timeout=180)
    assert usable(address, AddressFamily.IPV4), address
    assert address.source in type(polyvisor_connection.backend).address_sources


def test_a_timeout_names_each_source_asked(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.GUEST_ADDRESSES)
    sources = type(polyvisor_connection.backend).address_sources
    assert sources, "a backend with guest addresses declares its address_sources"
    vm = polyvisor_vm_factory("noaddr", nics=[])  # without a NIC no guest has a usable address
    vm.start()
    began = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        vm.wait_for_address(timeout=1)
    assert time.monotonic() - began < 1 + 5
    assert isinstance(caught.value, builtins.TimeoutError)
    message = str(caught.value)
    assert f"asked {', '.join(sources)}: " in message
    for source in sources:
        assert f"{source}: " in message.split("asked", 1)[1], f"the timeout does not say what {source} answered"


def test_waiting_for_the_address_of_a_stopped_vm_is_refused(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.GUEST_ADDRESSES)
    vm = polyvisor_vm_factory("addroff")
    with pytest.raises(InvalidStateError) as caught:
        vm.wait_for_address(timeout=5)
    assert caught.value.state is PowerState.STOPPED


# -- readiness waits ---------------------------------------------------------------------------------------------
_NEVER_READY = {"polyvisor.test/ready": "never"}  # memory://'s hook; a real guest is not ready within a second


def test_a_readiness_timeout_names_each_source_asked(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.READINESS)
    sources = type(polyvisor_connection.backend).ready_sources
    assert sources, "a backend with readiness declares its ready_sources"
    labels = _NEVER_READY if polyvisor_connection.supports(Feature.LABELS) else {}
    vm = polyvisor_vm_factory("notready", labels=labels)
    vm.start()
    began = time.monotonic()
    # A source that can never answer for this VM is refused (UnsupportedError), not waited on.
    with pytest.raises((TimeoutError, UnsupportedError)) as caught:
        vm.wait_until_ready(timeout=1, sources=sources)
    if isinstance(caught.value, UnsupportedError):
        assert any(repr(source) in str(caught.value) for source in sources), caught.value
    else:
        message = str(caught.value).split("asked", 1)[1]
        assert message.startswith(f" {', '.join(sources)}: "), message
        assert all(f"{source}: not ready" in message for source in sources), message
    assert time.monotonic() - began < 1 + 5


def test_waiting_until_a_stopped_vm_is_ready_is_refused(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.READINESS)
    vm = polyvisor_vm_factory("readyoff")
    with pytest.raises(InvalidStateError) as caught:
        vm.wait_until_ready(timeout=5)
    assert caught.value.state is PowerState.STOPPED


def test_the_ssh_source_reads_a_greeting_on_every_backend(polyvisor_vm_factory: VMFactory) -> None:
    """The core's ssh source, aimed at a port the kit serves on 127.0.0.1: the same answer on every backend."""
    vm = polyvisor_vm_factory("sshready")
    vm.start()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        greeter = threading.Thread(target=lambda: _greet(server), daemon=True)
        greeter.start()
        ready = vm.wait_until_ready(timeout=30, sources=["ssh"], ssh_host="127.0.0.1", ssh_port=port)
        greeter.join(10)
    assert ready.sources == ("ssh",)
    assert ready.answers[0].detail == f"127.0.0.1:{port} answered SSH-2.0-polyvisor-kit"


def _greet(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"SSH-2.0-polyvisor-kit\r\n")


# -- reconfigure ---------------------------------------------------------------------------------------------------
def test_reconfigure_a_stopped_vm(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.RECONFIGURE)
    vm = polyvisor_vm_factory("rcold", cpus=1)
    memory = vm.info().memory_mib
    info = vm.reconfigure(cpus=2, memory_mib=memory * 2)
    assert (info.cpus, info.memory_mib) == (2, memory * 2)
    again = vm.info()
    assert (again.cpus, again.memory_mib) == (2, memory * 2)
    assert again.state is PowerState.STOPPED


def test_reconfigure_live_cpus(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.RECONFIGURE)
    vm = polyvisor_vm_factory("rcpu", cpus=1)
    vm.start()
    if not vm.capabilities().supports(Feature.RECONFIGURE_LIVE_CPUS):
        with pytest.raises(UnsupportedError) as caught:
            vm.reconfigure(cpus=2)
        assert caught.value.feature is Feature.RECONFIGURE_LIVE_CPUS
        return
    # Live changes stay within the vCPU maximum the VM started with: a backend that starts a one-CPU guest with
    # room for a second (memory://) adds it; one that gives no hidden headroom (libvirt) refuses naming the limit.
    refused: ValidationError | None = None
    try:
        info = vm.reconfigure(cpus=2)
    except ValidationError as error:
        refused, info = error, vm.info()
    if refused is not None:
        assert refused.field == "cpus"
        assert info.cpus == 1
    else:
        assert info.cpus == 2
    assert info.state is PowerState.RUNNING
    with pytest.raises(ValidationError) as above:
        vm.reconfigure(cpus=1024)  # above any maximum a test guest starts with
    assert above.value.field == "cpus"


def test_reconfigure_live_memory(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory
) -> None:
    require(polyvisor_connection, Feature.RECONFIGURE)
    dynamic = polyvisor_connection.supports(Feature.DYNAMIC_MEMORY)
    memory = polyvisor_spec("rmem").memory_mib
    half = max(memory // 2, 16)
    overrides: dict[str, Any] = {}
    if dynamic:
        overrides["dynamic_memory"] = {"minimum_mib": half, "maximum_mib": memory}
    vm = polyvisor_vm_factory("rmem", memory_mib=memory, **overrides)
    vm.start()
    if not vm.capabilities().supports(Feature.RECONFIGURE_LIVE_MEMORY):
        with pytest.raises(UnsupportedError) as caught:
            vm.reconfigure(memory_mib=half)
        assert caught.value.feature is Feature.RECONFIGURE_LIVE_MEMORY
        return
    info = vm.reconfigure(memory_mib=half)
    assert half <= info.memory_mib <= memory, "live memory is the new target (or on its way there)"
    assert info.state is PowerState.RUNNING
    if dynamic:
        assert info.details is not None
        assert info.details.dynamic_memory is not None
        assert (info.details.dynamic_memory.minimum_mib, info.details.dynamic_memory.maximum_mib) == (half, memory)
    with pytest.raises(ValidationError):
        vm.reconfigure(memory_mib=memory * 4)  # above the maximum it started with


def test_reconfigure_refuses_a_cold_change_of_a_running_vm(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.RECONFIGURE)
    vm = polyvisor_vm_factory("rrun", cpus=1)
    vm.start()
    with pytest.raises(InvalidStateError) as caught:
        vm.reconfigure(cpus=2, live=False)
    assert caught.value.state is PowerState.RUNNING
    assert vm.info().cpus == 1


# -- resize ----------------------------------------------------------------------------------------------------------
def test_resize_grows_a_disk_and_never_shrinks_it(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.DISK_RESIZE, Feature.DISK_ATTACH)
    vm = polyvisor_vm_factory("rsz")
    target = vm.attach_disk({"size_mib": 64}, live=False)  # attach_disk names the target, on any backend
    sizes = {disk.target: disk.size_mib for disk in vm.disks()}
    assert sizes[target] == 64
    vm.resize_disk(target, 128)
    after = {disk.target: disk.size_mib for disk in vm.disks()}
    assert after == {**sizes, target: 128}  # that disk grew, the others did not
    # 96 MiB would be a growth of a 64 MiB disk: refusing it shows the disk is 128 MiB now.
    with pytest.raises(ValidationError) as caught:
        vm.resize_disk(target, 96)
    assert caught.value.field == "size_mib"


def test_resizing_a_missing_disk_is_not_found(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.DISK_RESIZE)
    vm = polyvisor_vm_factory("rszm")
    with pytest.raises(NotFoundError):
        vm.resize_disk("polyvisor-no-such-disk", 128)


# -- user-mode networking ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_user_mode_nic_keeps_its_forwards(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.USER_NETWORKING)
    port = _free_port()
    vm = polyvisor_vm_factory("usernet", nics=[{"kind": "user", "forwards": [f"{port}:22", f"{port}:53/udp"]}])
    forwards = vm.info().extra["forwards"]
    assert [(f["protocol"], f["host_address"], f["host_port"], f["guest_port"]) for f in forwards] == [
        ("tcp", "127.0.0.1", port, 22),
        ("udp", "127.0.0.1", port, 53),
    ]
    assert vm.start().state is PowerState.RUNNING


def test_a_host_port_another_running_vm_holds_leaves_the_vm_stopped(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.USER_NETWORKING)
    forward = [f"{_free_port()}:22"]
    first = polyvisor_vm_factory("usernet-a", nics=[{"kind": "user", "forwards": forward}])
    second = polyvisor_vm_factory("usernet-b", nics=[{"kind": "user", "forwards": forward}])
    first.start()
    with pytest.raises(AlreadyExistsError, match="in use"):
        second.start()
    assert second.state() is PowerState.STOPPED


def test_bad_forwards_create_nothing(polyvisor_connection: Connection, polyvisor_spec: SpecFactory) -> None:
    require(polyvisor_connection, Feature.USER_NETWORKING)
    before = {info.uuid for info in polyvisor_connection.list()}
    for forwards in (["0:22"], ["10.0.0.1:2222:22"], ["2222:22", "2222:80"]):
        with pytest.raises(ValidationError):
            polyvisor_connection.create(
                polyvisor_spec(unique_name("badfwd"), nics=[{"kind": "user", "forwards": forwards}])
            )
    assert {info.uuid for info in polyvisor_connection.list()} == before


# -- NAT NICs ------------------------------------------------------------------------------------------------------
def _nat_nic(*forwards: str) -> dict[str, Any]:
    return {"kind": "nat", "forwards": list(forwards)}


def test_a_nat_nic_reports_its_address_and_forwards_and_seeds_them(
    polyvisor_connection: Connection,
    polyvisor_vm_factory: VMFactory,
    polyvisor_seed_reader: SeedReader | None,
) -> None:
    require(polyvisor_connection, Feature.NAT_FORWARDING)
    port = _free_port()
    vm = polyvisor_vm_factory("nat", cloud_init={}, disks=[], nics=[_nat_nic(f"{port}:22", f"{port}:53/udp")])
    extra = vm.info().extra
    [nat] = extra["nat"]
    network = ipaddress.ip_interface(f"{nat['address']}/{nat['prefix_length']}").network
    assert ipaddress.ip_address(nat["gateway"]) in network
    assert nat["gateway"] != nat["address"]
    assert [
        (f["mac"], f["protocol"], f["host_address"], f["host_port"], f["guest_port"]) for f in extra["forwards"]
    ] == [
        (nat["mac"], "tcp", "0.0.0.0", port, 22),
        (nat["mac"], "udp", "0.0.0.0", port, 53),
    ]
    assert {f["guest_address"] for f in extra["forwards"]} == {nat["address"]}
    other = polyvisor_vm_factory("nat-b", cloud_init={}, disks=[], nics=[_nat_nic()])
    assert other.info().extra["nat"][0]["address"] != nat["address"]
    read = polyvisor_seed_reader(vm) if polyvisor_seed_reader is not None else None
    if read is not None:
        image = read()
        assert image is not None, "the VM's seed cannot be read"
        config = json.loads(_seed_files(image)["network-config"])
        [ethernet] = config["ethernets"].values()
        assert config["version"] == 2
        assert ethernet["match"] == {"macaddress": nat["mac"]}
        assert ethernet["addresses"] == [f"{nat['address']}/{nat['prefix_length']}"]
        assert ethernet["routes"] == [{"to": "0.0.0.0/0", "via": nat["gateway"]}]


def test_a_deleted_nat_vm_leaves_no_mapping_behind(
    polyvisor_connection: Connection, polyvisor_spec: SpecFactory
) -> None:
    require(polyvisor_connection, Feature.NAT_FORWARDING)
    port = _free_port()
    spec = polyvisor_spec(unique_name("nat-del"), cloud_init={}, disks=[], nics=[_nat_nic(f"{port}:22")])
    polyvisor_connection.create(spec).delete()
    # The port and the address are free again: a VM of the same spec takes both.
    again = polyvisor_connection.create(spec)
    try:
        assert [f["host_port"] for f in again.info().extra["forwards"]] == [port]
    finally:
        again.delete()


def test_a_clashing_nat_port_is_refused_before_anything_is_made(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory
) -> None:
    require(polyvisor_connection, Feature.NAT_FORWARDING)
    port = _free_port()
    first = polyvisor_vm_factory("nat-a", cloud_init={}, disks=[], nics=[_nat_nic(f"{port}:22")])
    before = {info.uuid for info in polyvisor_connection.list()}
    clashing = polyvisor_spec(unique_name("nat-clash"), cloud_init={}, disks=[], nics=[_nat_nic(f"{port}:80")])
    with pytest.raises(AlreadyExistsError, match=str(port)):
        polyvisor_connection.create(clashing)
    # Another protocol on the same port is another mapping.
    udp = polyvisor_spec(unique_name("nat-udp"), cloud_init={}, disks=[], nics=[_nat_nic(f"{port}:53/udp")])
    for bad in (
        {"nics": [_nat_nic(f"{port + 1}:22", f"{port + 1}:23")]},
        {"nics": [_nat_nic(f"127.0.0.1:{port + 1}:22")]},
    ):
        with pytest.raises(ValidationError):
            polyvisor_connection.create(polyvisor_spec(unique_name("nat-bad"), cloud_init={}, disks=[], **bad))
    assert {info.uuid for info in polyvisor_connection.list()} == before
    assert [f["host_port"] for f in first.info().extra["forwards"]] == [port]
    polyvisor_connection.create(udp).delete()


def test_a_nat_nic_needs_a_seed_and_belongs_to_the_definition(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory
) -> None:
    require(polyvisor_connection, Feature.NAT_FORWARDING)
    with pytest.raises(ValidationError) as caught:
        polyvisor_spec(unique_name("nat-noseed"), nics=[_nat_nic()])
    assert caught.value.field == "cloud_init"
    with pytest.raises(ValidationError) as caught:
        polyvisor_spec(unique_name("nat-netcfg"), cloud_init={"network_config": {"version": 2}}, nics=[_nat_nic()])
    assert caught.value.field == "cloud_init.network_config"
    vm = polyvisor_vm_factory("nat-attach", cloud_init={}, disks=[])
    with pytest.raises(ValidationError, match="in the spec"):
        vm.attach_nic({"kind": "nat"})
