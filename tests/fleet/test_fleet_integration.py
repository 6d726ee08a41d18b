"""A real mixed fleet: two loopback Hyper-V hosts, three libvirt test hypervisors, qemu:///system, a dead host
and a hanging one. Every live host answers; the dead one fails fast and clearly; the hanging one costs its own
timeout and nothing more."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import polyvisor
from polyvisor import Fleet, FleetError, Placement, PlacementError, PowerState
from polyvisor.errors import ConnectionError, ConnectionLostError, NotFoundError, TimeoutError, ValidationError

from .conftest import HANG_TIMEOUT, LIVE, MixedFleet, missing

GUEST_DIR = Path(os.environ.get("POLYVISOR_GUEST_DIR", "/var/lib/libvirt/images/polyvisor-guest"))


SLACK = 1.0
"""Seconds a call may take beyond the hanging host's timeout (thread start-up, a loaded CI machine)."""


def test_a_listing_answers_for_every_live_host_and_bounds_the_hanging_one(fleet: Fleet) -> None:
    began = time.monotonic()
    result = fleet.list()
    wall = time.monotonic() - began

    assert list(result) == [*LIVE, "dead", "hang"]
    assert result.partial
    assert not result.ok
    assert set(result.values) == set(LIVE)
    assert sorted(result.errors) == ["dead", "hang"]
    # test:///default has its built-in running domain 'test'; the private test hypervisor starts empty.
    assert result["t3"].unwrap() == []
    for host in ("t1", "t2"):
        assert "test" in [vm.name for vm in result[host].unwrap()]
    # The hanging host is bounded by its own timeout, and the call by it: the others did not wait.
    assert isinstance(result.errors["hang"], TimeoutError)
    assert HANG_TIMEOUT <= wall < HANG_TIMEOUT + SLACK, wall
    assert result["hang"].elapsed == pytest.approx(HANG_TIMEOUT, abs=0.5)
    for host in LIVE:
        assert result[host].elapsed < HANG_TIMEOUT, (host, result[host].elapsed)
    # The dead host failed at once, with an error naming what to check.
    dead = result.errors["dead"]
    assert isinstance(dead, ConnectionError)
    assert "cannot reach" in str(dead)
    assert result["dead"].elapsed < HANG_TIMEOUT


def test_listing_reads_each_backend(fleet: Fleet, mixed: MixedFleet) -> None:
    result = fleet.list(details=True)
    kvm = {vm.name: vm for vm in result["kvm"].unwrap()}
    assert kvm[mixed.kvm_vm].state is PowerState.STOPPED
    assert kvm[mixed.kvm_vm].info.labels == {"fleet": "kvm-only"}
    assert result["hv-psrp"].uri.startswith("hyperv://127.0.0.1:")
    assert all(vm.host == host for host, vms in result.values.items() for vm in vms)
    flattened = fleet.vms()
    assert {vm.host for vm in flattened} == {host for host in LIVE if result[host].unwrap()}
    # qemu:///system is the machine's libvirtd, where others may define VMs between the two listings: compare the
    # private hosts in full and the fleet's own VM there.
    private = {vm.key for vms in result.values.values() for vm in vms if vm.host != "kvm"}
    assert {vm.key for vm in flattened if vm.host != "kvm"} == private
    assert mixed.kvm_vm in {vm.name for vm in flattened if vm.host == "kvm"}


def test_raise_for_errors_lists_each_failed_host(fleet: Fleet) -> None:
    result = fleet.map(lambda conn: conn.host_info().hypervisor)
    assert result.values["kvm"] == "libvirt/QEMU"
    assert result.values["t1"] == "libvirt/TEST"
    assert result.values["hv-psrp"] == result.values["hv-winrm"]
    with pytest.raises(FleetError) as caught:
        result.raise_for_errors()
    assert set(caught.value.errors) == {"dead", "hang"}
    assert "dead: " in str(caught.value)
    assert "hang: no answer within 1.5s" in str(caught.value)
    assert fleet.map(lambda conn: conn.host, hosts=LIVE).raise_for_errors().ok


def test_credentials_never_show(fleet: Fleet, mixed: MixedFleet) -> None:
    import os

    password = os.environ[mixed.hosts["hv-psrp"].password_env or ""]
    result = fleet.list()
    text = repr(result) + repr(list(result.items())) + repr(fleet)
    text += "".join(str(error) for error in result.errors.values())
    assert password not in text


def test_connections_are_pooled_and_a_lost_one_is_reopened(fleet: Fleet) -> None:
    first = fleet.connection("hv-psrp")
    assert fleet.connection("hv-psrp") is first
    seen = fleet.map(lambda conn: conn, hosts=["hv-psrp", "t1"]).values
    assert seen["hv-psrp"] is first

    def drop(conn: polyvisor.Connection) -> None:
        raise ConnectionLostError("the link dropped", host=conn.host)

    assert isinstance(fleet.map(drop, hosts=["hv-psrp"]).errors["hv-psrp"], ConnectionLostError)
    again = fleet.connection("hv-psrp")
    assert again is not first
    assert fleet.list(hosts=["hv-psrp"])["hv-psrp"].ok  # the new connection works


def test_find_across_backends(fleet: Fleet, mixed: MixedFleet) -> None:
    found = fleet.find(mixed.kvm_vm)
    assert found.host == "kvm"
    assert found.vm().state() is PowerState.STOPPED
    assert fleet.find(found.uuid.upper()).key == found.key
    assert fleet.find(f"kvm/{mixed.kvm_vm}").uuid == found.uuid
    # 'test' is on both test:///default hosts: ambiguous, and the error names every copy.
    with pytest.raises(ValidationError) as ambiguous:
        fleet.find("test")
    assert all(f"{host}/test" in str(ambiguous.value) for host in ("t1", "t2"))
    assert "host/name" in str(ambiguous.value)
    assert fleet.find("t2/test").host == "t2"


def test_find_says_where_it_looked_and_who_failed(fleet: Fleet) -> None:
    with pytest.raises(NotFoundError) as caught:
        fleet.find("no-such-vm")
    message = str(caught.value)
    assert "hv-psrp, hv-winrm, t1, t2, t3, kvm" in message
    assert "could not be searched: dead:" in message
    assert "hang: no answer" in message


@pytest.fixture
def labelled(fleet: Fleet) -> Iterator[str]:
    """A stopped VM labelled role=<unique> on each Hyper-V host, on t3, and a real TCG guest (the tiny conformance
    guest) on qemu:///system; deleted afterwards, with their disks."""
    role = f"web-{uuid.uuid4().hex[:6]}"
    made = []
    for host in ("hv-psrp", "hv-winrm", "t3"):
        conn = fleet.connection(host)
        made.append(conn.create({"name": f"{role}-{host}", "memory_mib": 256, "labels": {"role": role}}))
    guest = GUEST_DIR / "x86_64" / "conformance-spec.json"
    if not guest.exists():
        missing("the tiny guest's conformance spec (scripts/build-guest-image)", f"no {guest}")
    spec = {**json.loads(guest.read_text()), "name": f"{role}-kvm", "labels": {"role": role}}
    made.append(fleet.connection("kvm").create(spec))
    yield role
    for vm in made:
        vm.ensure("stopped", force=True)
        vm.delete(storage=True)


def test_ensure_on_a_label_selection_across_backends(fleet: Fleet, labelled: str) -> None:
    selection = fleet.select(labels={"role": labelled})
    matched = fleet.matching(selection)
    assert sorted(vm.key for vms in matched.values.values() for vm in vms) == sorted(
        f"{host}/{labelled}-{host}" for host in ("hv-psrp", "hv-winrm", "t3", "kvm")
    )
    began = time.monotonic()
    result = fleet.ensure(selection, "running", timeout=30)
    wall = time.monotonic() - began

    running = {key: status.state for key, status in result.values.items()}
    assert running == {f"{h}/{labelled}-{h}": PowerState.RUNNING for h in ("hv-psrp", "hv-winrm", "t3", "kvm")}
    # The listing failed on the dead and hanging hosts: the result says so under their names.
    assert result.partial
    assert sorted(result.errors) == ["dead", "hang"]
    assert wall < 30
    # A selection narrowed to live hosts and a state acts on exactly those VMs.
    narrowed = fleet.select(labels={"role": labelled}, hosts=["t3", "hv-psrp", "kvm"], states=["running"])
    paused = fleet.act(narrowed, "pause", timeout=30).raise_for_errors()
    assert sorted(paused) == sorted(f"{h}/{labelled}-{h}" for h in ("t3", "hv-psrp", "kvm"))
    assert all(status is not None and status.state is PowerState.PAUSED for status in paused.values.values())


def test_placement_reasons_per_host(fleet: Fleet) -> None:
    with pytest.raises(PlacementError) as caught:
        fleet.create({"name": "too-big", "memory_mib": 48 * 1024})
    reasons = caught.value.reasons
    assert reasons["hv-psrp"].endswith("MiB free, 49152 needed")
    assert reasons["kvm"].endswith("MiB free, 49152 needed")
    assert reasons["hang"] == "timed out"
    assert reasons["dead"].startswith("unreachable: ")
    assert "hv-winrm: " in str(caught.value)
    assert isinstance(caught.value, ValidationError)
    # Labels narrow the hosts; the one with most free memory among the rest is chosen.
    with pytest.raises(PlacementError) as labels_only:
        fleet.create({"name": "nowhere", "memory_mib": 128}, placement=Placement(labels={"site": "mars"}))
    assert labels_only.value.reasons["t1"] == "lacks label site=mars"


def test_create_places_by_labels_and_free_memory(fleet: Fleet) -> None:
    name = f"placed-{uuid.uuid4().hex[:6]}"
    placed = fleet.create(
        {"name": name, "memory_mib": 512, "cpus": 2}, placement=Placement(labels={"site": "lab-b", "os": "windows"})
    )
    try:
        assert placed.host == "hv-winrm"
        assert placed.vm().state() is PowerState.STOPPED
        assert fleet.find(name).key == f"hv-winrm/{name}"
    finally:
        placed.vm().delete()
    # The libvirt test hypervisors report no usable free memory: it is computed from their running VMs.
    candidates = {c.host: c for c in fleet.candidates(hosts=["t3", "kvm"])}
    info = fleet.connection("t3").host_info()
    running = sum(vm.memory_mib for vm in fleet.connection("t3").list(details=True) if vm.state.holds_memory)
    assert candidates["t3"].free_memory_mib == max(info.memory_mib - running, 0)
    assert candidates["kvm"].free_memory_mib is not None


def test_close_is_bounded_even_with_a_host_stuck(mixed: MixedFleet) -> None:
    fleet = mixed.fleet(max_concurrency=2)
    began = time.monotonic()
    result = fleet.list()  # two at a time: the hanging host holds one slot only until its timeout
    assert set(result.errors) == {"dead", "hang"}
    assert time.monotonic() - began < 2 * HANG_TIMEOUT + 4
    stuck = threading.active_count()
    began = time.monotonic()
    fleet.close(timeout=2)
    assert time.monotonic() - began < 2 + SLACK
    assert threading.active_count() <= stuck + 8
    with pytest.raises(ConnectionError, match="closed"):
        fleet.connection("t1")
