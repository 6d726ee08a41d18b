"""The asyncio fleet over a mixed set of hosts: two in-memory hosts, libvirt's test:///default, the loopback
Hyper-V host, a dead host (a closed port) and a hanging one (a listener that accepts and never answers).

Every live host answers; the dead one fails fast; the hanging one costs its own timeout and nothing more.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Iterator

import pytest
from aio_support import Target
from unreachable_hosts import HangingListener, closed_port

import polyvisor
import polyvisor.aio
from conftest import HYPERV_PASSWORD, HYPERV_USER
from polyvisor import ConnectionError, PowerState, TimeoutError
from polyvisor.aio import AsyncConnection, AsyncFleet, AsyncVM
from polyvisor.config import NamedConnection
from polyvisor.fleet import Fleet, FleetError, Placement, PlacementError

HANG_TIMEOUT = 1.5
"""Seconds the hanging host is given: every call that reaches it takes about this long."""
SLACK = 3.0
"""Seconds a call may take beyond the hanging host's timeout (thread start-up, a loaded machine)."""
LIVE = ("m1", "m2", "t1", "hv")


@pytest.fixture
def hosts(
    loopback_hyperv: object, libvirt_test: Target, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, NamedConnection]]:
    password_env = f"POLYVISOR_AIO_FLEET_PASSWORD_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(password_env, HYPERV_PASSWORD)
    hv = {"username": HYPERV_USER, "password_env": password_env}
    port = loopback_hyperv.port  # type: ignore[attr-defined]
    hang = HangingListener()
    try:
        yield {
            "m1": NamedConnection("m1", f"memory:///aio-fleet-{uuid.uuid4().hex}", labels={"site": "a"}),
            "m2": NamedConnection("m2", f"memory:///aio-fleet-{uuid.uuid4().hex}", labels={"site": "b"}),
            "t1": NamedConnection("t1", libvirt_test.uri, labels={"site": "a"}),
            "hv": NamedConnection(
                "hv", f"hyperv://127.0.0.1:{port}/?transport=psrp&scheme=http", labels={"site": "b"}, **hv
            ),
            "dead": NamedConnection("dead", f"hyperv://127.0.0.1:{closed_port()}/?scheme=http", **hv),
            "hang": NamedConnection(
                "hang", f"hyperv://127.0.0.1:{hang.port}/?scheme=http&transport=winrm", timeout=HANG_TIMEOUT, **hv
            ),
        }
    finally:
        hang.close()


async def test_a_listing_answers_for_every_live_host_and_bounds_the_hanging_one(
    hosts: dict[str, NamedConnection],
) -> None:
    async with AsyncFleet(hosts, timeout=30) as fleet:
        started = time.monotonic()
        result = await fleet.list()
        took = time.monotonic() - started
        assert list(result) == [*LIVE, "dead", "hang"]
        assert sorted(result.errors) == ["dead", "hang"]
        assert isinstance(result.errors["hang"], TimeoutError)
        assert result["hang"].elapsed == pytest.approx(HANG_TIMEOUT, abs=0.5)
        assert isinstance(result.errors["dead"], ConnectionError)
        assert result["dead"].elapsed < HANG_TIMEOUT
        assert took < HANG_TIMEOUT + SLACK  # the others did not wait for the hanging host
        assert all(isinstance(result.values[host], list) for host in LIVE)
        assert HYPERV_PASSWORD not in repr(result) + str(result.errors) + fleet.uri("hv") + repr(fleet)
        with pytest.raises(FleetError) as caught:
            result.raise_for_errors()
        assert set(caught.value.errors) == {"dead", "hang"}

        # A second call finds the hanging host's connection dropped and bounds it again; the others stay warm.
        again = await fleet.list(hosts=["m1", "hang"])
        assert again["m1"].ok
        assert isinstance(again.errors["hang"], TimeoutError)


async def test_one_slot_each_the_hanging_host_holds_its_slot_only_until_its_timeout(
    hosts: dict[str, NamedConnection],
) -> None:
    async with AsyncFleet(hosts, max_concurrency=2, timeout=30) as fleet:
        started = time.monotonic()
        result = await fleet.list()
        assert set(result.errors) == {"dead", "hang"}
        assert time.monotonic() - started < HANG_TIMEOUT + SLACK


async def test_place_select_act_ensure_find_and_map(hosts: dict[str, NamedConnection]) -> None:
    name = f"aio-fleet-{uuid.uuid4().hex[:8]}"
    async with AsyncFleet(hosts, timeout=30) as fleet:
        placed = await fleet.create(
            {"name": name, "cpus": 1, "memory_mib": 128, "labels": {"app": name}},
            placement=Placement(labels={"site": "b"}, hosts=["m2", "hv", "dead", "hang"]),
        )
        assert placed.host in ("m2", "hv")
        try:
            found = await fleet.find(name)
            assert (found.host, found.uuid) == (placed.host, placed.uuid)
            assert (await fleet.find(f"{placed.host}/{name}")).uuid == placed.uuid

            selection = fleet.select(labels={"app": name})
            started = await fleet.act(selection, "start", timeout=30)
            assert started[f"{placed.host}/{name}"].unwrap().state is PowerState.RUNNING
            assert sorted(started.errors) == ["dead", "hang"]  # their listings failed: said under their names

            stopped = await fleet.ensure(selection, "stopped", force=True, timeout=30)
            assert stopped[f"{placed.host}/{name}"].unwrap().state is PowerState.STOPPED

            vm = await fleet.vm(placed)
            assert isinstance(vm, AsyncVM)
            assert await vm.state() is PowerState.STOPPED

            async def hypervisor(conn: AsyncConnection) -> str:
                return (await conn.host_info()).hypervisor

            kinds = await fleet.map(hypervisor, hosts=LIVE)
            assert kinds.ok
            assert kinds.values == {"m1": "memory", "m2": "memory", "t1": "libvirt/TEST", "hv": "hyperv"}
        finally:
            deleted = await fleet.act([placed], "delete")
            assert deleted.ok
        with pytest.raises(polyvisor.NotFoundError, match="could not be searched: dead"):
            await fleet.find(name)


async def test_placement_says_host_by_host_why_nothing_fits(hosts: dict[str, NamedConnection]) -> None:
    async with AsyncFleet(hosts, timeout=30) as fleet:
        with pytest.raises(PlacementError) as caught:
            await fleet.create(
                {"name": "too-big", "cpus": 1, "memory_mib": 128}, placement=Placement(labels={"x": "y"})
            )
        reasons = caught.value.reasons
        assert reasons["hang"] == "timed out"
        assert reasons["dead"].startswith("unreachable: ")
        assert reasons["m1"] == "lacks label x=y"


async def test_verb_errors_are_per_vm_results(memory: Target) -> None:
    async with AsyncFleet({"m": memory.uri}) as fleet:
        conn = await fleet.connection("m")
        await conn.create({"name": "stopped-one", "cpus": 1, "memory_mib": 64})
        result = await fleet.act(fleet.select(names=["stopped-one"]), "pause")
        assert isinstance(result.errors["m/stopped-one"], polyvisor.InvalidStateError)
        with pytest.raises(polyvisor.ValidationError, match="not a verb"):
            await fleet.act(fleet.select(), "explode")


async def test_map_vms_runs_a_coroutine_on_each_selected_vm(memory: Target) -> None:
    async with AsyncFleet({"m": memory.uri}) as fleet:
        conn = await fleet.connection("m")
        for name in ("one", "two"):
            await conn.create({"name": name, "cpus": 1, "memory_mib": 64, "labels": {"set": "map-vms"}})

        async def started(vm: AsyncVM) -> str:
            return (await vm.ensure("running", timeout=10)).state.value

        result = await fleet.map_vms(fleet.select(labels={"set": "map-vms"}), started, timeout=10)
        assert result.values == {"m/one": "running", "m/two": "running"}


def test_the_async_fleet_has_every_call_of_the_thread_pool_fleet() -> None:
    plain = {"select", "uri", "labels", "host_timeout", "hosts", "groups", "from_config"}
    async_only = {"vm"}
    sync_calls = {name: value for name, value in inspect.getmembers(Fleet) if not name.startswith("_")}
    async_calls = {name: value for name, value in inspect.getmembers(AsyncFleet) if not name.startswith("_")}
    assert set(async_calls) - set(sync_calls) == async_only
    for name, sync_call in sync_calls.items():
        assert name in async_calls, f"AsyncFleet lacks {name}"
        twin = async_calls[name]
        if isinstance(sync_call, property):
            assert isinstance(twin, property), name
            continue
        assert inspect.iscoroutinefunction(twin) == (name not in plain), name
        sync_parameters = [(p.name, p.kind, p.default) for p in inspect.signature(sync_call).parameters.values()]
        async_parameters = [
            (p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values() if p.name != "workers"
        ]
        assert async_parameters == sync_parameters, f"AsyncFleet.{name} drifted"
    init = [name for name in inspect.signature(AsyncFleet).parameters if name != "workers"]
    assert init == list(inspect.signature(Fleet).parameters)
