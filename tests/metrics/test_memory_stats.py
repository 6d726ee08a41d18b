"""memory:// counters through both faces and the fleet: known loads, resets at boot, reasons for what is missing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

import polyvisor
import polyvisor.aio
from polyvisor import Connection, Feature, Fleet, NotFoundError, UnsupportedError
from polyvisor.metrics import rates, rates_by_uuid
from polyvisor.testing import memory_stats
from polyvisor.testing.memory import HOST_CPUS, MemoryHost, host_named


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def host(clock: FakeClock) -> MemoryHost:
    host = host_named(f"stats-{uuid.uuid4().hex[:8]}")
    host.clock = clock
    return host


@pytest.fixture
def conn(host: MemoryHost) -> Iterator[Connection]:
    with polyvisor.connect(f"memory:///{host.name}") as conn:
        yield conn


SPEC = {"name": "web", "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 64}], "nics": [{"network": "default"}]}


def test_rates_of_a_running_guest_are_its_known_load(conn: Connection, clock: FakeClock) -> None:
    vm = conn.create(SPEC)
    vm.start()
    first = vm.stats()
    clock.now += 10.0
    second = vm.stats()
    assert second.sampled_at - first.sampled_at == pytest.approx(10.0)
    rated = rates(first, second)
    assert rated.cpu_percent == pytest.approx(100 * memory_stats.VCPU_LOAD)
    host_share = 100 * (2 * memory_stats.VCPU_LOAD + memory_stats.OVERHEAD) / HOST_CPUS
    assert rated.host_cpu_percent == pytest.approx(host_share)
    assert rated.disk_read_bytes_per_second == pytest.approx(memory_stats.DISK_READ_RATE)
    assert rated.rx_bytes_per_second == pytest.approx(memory_stats.RX_RATE)
    assert second.memory.current_bytes == 512 * 1024 * 1024
    assert second.nics[0].mac is not None
    assert second.missing == {}


def test_a_paused_guest_stands_still_and_a_new_boot_restarts_its_counters(conn: Connection, clock: FakeClock) -> None:
    vm = conn.create(SPEC)
    vm.start()
    clock.now += 5.0
    vm.pause()
    paused = vm.stats()
    clock.now += 5.0
    assert vm.stats().cpu_time_ns == paused.cpu_time_ns
    vm.resume()
    vm.stop()
    vm.start()
    clock.now += 1.0
    again = vm.stats()
    assert again.cpu_time_ns is not None
    assert paused.cpu_time_ns is not None
    assert again.cpu_time_ns < paused.cpu_time_ns
    assert rates(paused, again).restarted


def test_a_stopped_vm_says_why_it_has_no_counters(conn: Connection) -> None:
    vm = conn.create(SPEC)
    sample = vm.stats()
    assert sample.cpu_time_ns is None
    assert sample.disks == ()
    reason = sample.why_missing("cpu_time_ns")
    assert reason is not None
    assert "stopped" in reason
    assert sample.to_dict()["missing"]["cpu_time_ns"] == reason


def test_one_bulk_call_samples_every_vm(conn: Connection) -> None:
    vms = [conn.create({**SPEC, "name": f"web{index}"}) for index in range(5)]
    before = polyvisor.testing.faults.calls(conn)[:]
    samples = conn.stats()
    assert polyvisor.testing.faults.calls(conn)[len(before) :] == ["stats"]
    assert {vm.uuid for vm in vms} == {sample.uuid for sample in samples}


def test_without_the_feature_stats_are_refused(host: MemoryHost) -> None:
    with polyvisor.connect(f"memory:///{host.name}?without=stats") as conn:
        assert not conn.supports(Feature.STATS)
        with pytest.raises(UnsupportedError, match="'stats'"):
            conn.stats()
        vm = conn.create(SPEC)
        with pytest.raises(UnsupportedError):
            vm.stats()


def test_a_deleted_vm_is_not_found(conn: Connection) -> None:
    vm = conn.create(SPEC)
    vm.delete()
    with pytest.raises(NotFoundError):
        vm.stats()


def test_the_asyncio_face_samples_the_same(host: MemoryHost, clock: FakeClock) -> None:
    async def main() -> tuple[float | None, int]:
        async with polyvisor.aio.connect(f"memory:///{host.name}") as conn:
            vm = await conn.create(SPEC)
            await vm.start()
            first = await vm.stats()
            clock.now += 2.0
            second = await vm.stats()
            every = await conn.stats()
            return rates(first, second).cpu_percent, len(every)

    share, count = asyncio.run(main())
    assert share == pytest.approx(100 * memory_stats.VCPU_LOAD)
    assert count == 1


def test_a_fleet_samples_every_host_and_reports_the_one_that_fails(host: MemoryHost, clock: FakeClock) -> None:
    other = host_named(f"{host.name}-b")
    other.clock = clock
    with polyvisor.connect(f"memory:///{host.name}") as conn:
        conn.create(SPEC).start()
    fleet = Fleet(
        {"a": f"memory:///{host.name}", "b": f"memory:///{other.name}", "c": f"memory:///{other.name}?fail=stats"}
    )
    with fleet:
        first = fleet.stats()
        clock.now += 4.0
        second = fleet.stats()
    assert first["a"].ok
    assert first["b"].ok
    assert not first["c"].ok
    assert "injected failure" in str(first["c"].error)
    assert len(first["a"].unwrap()) == 1
    assert first["b"].unwrap() == []
    rated = rates_by_uuid(first["a"].unwrap(), second["a"].unwrap())
    assert [r.cpu_percent for r in rated.values()] == [pytest.approx(100 * memory_stats.VCPU_LOAD)]


def test_an_async_fleet_samples_every_host(host: MemoryHost) -> None:
    async def main() -> bool:
        async with polyvisor.aio.AsyncFleet({"a": f"memory:///{host.name}"}) as fleet:
            result = await fleet.stats()
            return result.ok

    assert asyncio.run(main())
