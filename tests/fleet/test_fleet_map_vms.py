"""``Fleet.map_vms``: any per-VM work, on every selected VM at once, through the fleet's pooled connections.

Memory hosts only: the fan-out and the timeouts are the ones ``ensure`` and ``act`` share (tested against real
hosts in test_fleet_integration.py); what is new is that the caller's function runs on each VM's handle.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

import polyvisor
from polyvisor import Fleet, FleetVM, PowerState, ValidationError


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    tag = uuid.uuid4().hex[:8]
    hosts = {
        "m1": f"memory:///map-vms-{tag}-1",
        "m2": f"memory:///map-vms-{tag}-2",
        "down": f"memory:///map-vms-{tag}-3?unreachable=true",
    }
    with Fleet(hosts, timeout=5) as fleet:
        for host, names in (("m1", ["a1", "a2", "other"]), ("m2", ["b1"])):
            conn = fleet.connection(host)
            for name in names:
                conn.create({"name": name, "memory_mib": 64, "labels": {"app": "web" if name != "other" else "db"}})
        yield fleet


def test_the_function_runs_on_each_selected_vm_at_once_with_per_vm_results(fleet: Fleet) -> None:
    threads: set[int] = set()
    barrier = threading.Barrier(3, timeout=5)  # all three VMs' work runs at the same time, or this times out

    def label_and_start(vm: polyvisor.VM) -> str:
        threads.add(threading.get_ident())
        barrier.wait()
        if vm.info().name == "a2":
            raise polyvisor.NotFoundError("gone meanwhile", vm="a2")
        vm.set_labels({**vm.labels(), "seen": "yes"})
        return vm.ensure("running", timeout=5).state.value

    result = fleet.map_vms(fleet.select(labels={"app": "web"}, hosts=["m1", "m2"]), label_and_start, timeout=10)
    assert sorted(result) == ["m1/a1", "m1/a2", "m2/b1"]
    assert result.values == {"m1/a1": "running", "m2/b1": "running"}
    assert isinstance(result.errors["m1/a2"], polyvisor.NotFoundError)
    assert len(threads) == 3
    conn = fleet.connection("m1")
    assert conn.vm("a1").labels()["seen"] == "yes"
    assert conn.vm("other").state() is PowerState.STOPPED  # not selected: untouched


def test_a_host_whose_listing_failed_is_reported_under_its_name(fleet: Fleet) -> None:
    result = fleet.map_vms(fleet.select(labels={"app": "web"}), lambda vm: vm.uuid)
    assert set(result.values) == {"m1/a1", "m1/a2", "m2/b1"}
    assert list(result.errors) == ["down"]
    assert isinstance(result.errors["down"], polyvisor.ConnectionError)


def test_listed_vms_are_acted_on_without_listing_again(fleet: Fleet) -> None:
    listed: list[FleetVM] = fleet.vms(details=True)
    chosen = [vm for vm in listed if vm.name in ("a1", "b1")]
    assert fleet.map_vms(chosen, lambda vm: vm.uuid).values == {vm.key: vm.uuid for vm in chosen}


def test_a_bad_timeout_is_refused_before_any_work(fleet: Fleet) -> None:
    ran: list[str] = []
    with pytest.raises(ValidationError, match="timeout"):
        fleet.map_vms(fleet.select(hosts=["m1"]), lambda vm: ran.append(vm.name), timeout=0)
    assert ran == []
