"""Resource metering and the virtual processor counters, through the cmdlets a script calls."""

from __future__ import annotations

import io

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.hyperv.metering import GUEST_LOAD, HYPERVISOR_LOAD, READ_MB_PER_SECOND
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

VP = "Win32_PerfRawData_HvStats_HyperVHypervisorVirtualProcessor"


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def host(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> HyperVHost:
    hv = HyperVHost(transition_delay=0, kvp_delay=0)
    monkeypatch.setattr(hv, "now", clock)
    return hv


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def test_measure_vm_needs_metering_and_then_adds_up_disk_data_across_restarts(host: HyperVHost, clock: Clock) -> None:
    vm = host.lifecycle.new_vm("web", generation=2)
    with pytest.raises(PipelineStopped) as info:
        _run(host, "$ErrorActionPreference = 'Stop'; Measure-VM -Name web")
    assert "Enable-VMResourceMetering" in info.value.record.message
    assert _run(host, "(Get-VM -Name web).ResourceMeteringEnabled") == [False]
    _run(host, "Enable-VMResourceMetering -VMName web")
    assert _run(host, "(Get-VM -Name web).ResourceMeteringEnabled") == [True]
    host.power.start_vm(vm.id)
    clock.now += 10
    assert _run(host, "(Measure-VM -Name web).AggregatedDiskDataRead") == [int(10 * READ_MB_PER_SECOND)]
    host.power.turn_off_vm(vm.id)
    clock.now += 100  # an Off VM reads nothing
    host.power.start_vm(vm.id)
    clock.now += 5
    assert _run(host, "(Get-VM -Name web | Measure-VM).AggregatedDiskDataRead") == [int(15 * READ_MB_PER_SECOND)]
    _run(host, "Disable-VMResourceMetering -VMName web")
    assert _run(host, "(Get-VM -Name web).ResourceMeteringEnabled") == [False]


def test_virtual_processors_count_100ns_ticks_while_the_partition_runs(host: HyperVHost, clock: Clock) -> None:
    vm = host.lifecycle.new_vm("db", generation=2)
    host.lifecycle.set_vm(vm.id, processor_count=2)
    assert _run(host, f"(Get-CimInstance -ClassName {VP}).Name") == ["_Total"]
    host.power.start_vm(vm.id)
    started = _run(host, f"(Get-CimInstance {VP})[0].Timestamp_PerfTime")
    clock.now += 3
    # Utilization is the raw value's increase over the class's own clock's (Timestamp_PerfTime, Frequency_PerfTime).
    (stamp,) = _run(host, f"(Get-CimInstance {VP})[0].Timestamp_PerfTime")
    (frequency,) = _run(host, f"(Get-CimInstance {VP})[0].Frequency_PerfTime")
    assert (stamp - started[0]) / frequency == pytest.approx(3)
    names = _run(host, f"(Get-CimInstance {VP}).Name")
    assert names == ["db:Hv VP 0", "db:Hv VP 1", "_Total"]
    guest = _run(host, f"(Get-CimInstance -ClassName {VP} -Namespace root\\cimv2)[0].PercentGuestRunTime")
    assert guest == [int(3 * 10_000_000 * GUEST_LOAD)]
    total = _run(host, f"(Get-CimInstance -ClassName {VP})[1].PercentTotalRunTime")
    assert total == [int(3 * 10_000_000 * GUEST_LOAD) + int(3 * 10_000_000 * HYPERVISOR_LOAD)]


def test_get_cim_instance_of_another_class_is_an_invalid_class(host: HyperVHost) -> None:
    with pytest.raises(PipelineStopped) as info:
        _run(host, "$ErrorActionPreference = 'Stop'; Get-CimInstance -ClassName Win32_NoSuchThing")
    assert "Invalid class" in info.value.record.message
