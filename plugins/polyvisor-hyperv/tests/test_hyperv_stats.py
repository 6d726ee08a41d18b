"""Counters through the loopback Hyper-V host over both transports: the virtual processor counters give CPU time,
resource metering (enabled by polyvisor) the disks' data, and what Hyper-V cannot say is declared."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import polyvisor
from polyvisor import PowerState
from polyvisor.metrics import VMStats, rates
from polyvisor.testing import eventually
from polyvisor_hyperv_loopback.hyperv import metering


def test_a_running_vm_has_cpu_and_disk_counters_and_declares_the_rest(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    name = f"{vm_name} $(Remove-VM *) 'x'"  # travels as a parameter value, never as PowerShell text
    vm = conn.create({"name": name, "cpus": 2, "memory_mib": 512, "disks": [{"size_mib": 64}]})
    try:
        stopped = vm.stats()
        assert stopped.status.state is PowerState.STOPPED
        assert stopped.cpu_time_ns is None
        assert "partition runs" in (stopped.why_missing("cpu_time_ns") or "")
        assert loopback_http.engine.host.metering.enabled(uuid.UUID(vm.uuid))  # polyvisor turned metering on

        vm.start()
        first = vm.stats()
        assert first.vcpu_times_ns is not None
        assert len(first.vcpu_times_ns) == 2

        def later() -> VMStats | None:
            sample = vm.stats()
            return sample if sample.sampled_at - first.sampled_at >= 1.0 else None

        second = eventually(later, timeout=10, interval=0.1)
        rated = rates(first, second)
        assert rated.cpu_percent == pytest.approx(100 * metering.GUEST_LOAD, abs=5)
        host_cpus = second.host_cpus
        assert host_cpus == loopback_http.engine.host.logical_processor_count
        share = 100 * 2 * (metering.GUEST_LOAD + metering.HYPERVISOR_LOAD) / host_cpus
        assert rated.host_cpu_percent == pytest.approx(share, abs=2)
        (disk,) = second.disks
        assert disk.name == "all"
        assert disk.read_bytes is not None
        assert disk.read_bytes >= 1024 * 1024  # whole megabytes, 2 MB/s for a second or more
        assert second.memory.current_bytes == 512 * 1024 * 1024
        assert second.memory.rss_bytes is None
        for field in ("memory.unused_bytes", "memory.rss_bytes", "nics", "disks"):
            assert second.why_missing(field)
        assert vm.uuid in {sample.uuid for sample in conn.stats()}
    finally:
        vm.stop()
        vm.delete(storage=True, force=True)


def test_two_vms_with_one_name_say_why_their_cpu_is_missing(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    vm = conn.create({"name": vm_name, "cpus": 1, "memory_mib": 256})
    host = loopback_http.engine.host
    twin = host.lifecycle.new_vm(vm_name, generation=2, memory_startup=256 * 1024 * 1024)  # Hyper-V allows it
    try:
        vm.start()
        sample = vm.stats()
        assert sample.cpu_time_ns is None
        assert "named" in (sample.why_missing("cpu_time_ns") or "")
    finally:
        vm.stop()
        vm.delete(force=True)
        host.lifecycle.remove_vm(twin.id)


def test_sampling_costs_the_same_requests_for_three_vms_as_for_six(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    vms = [conn.create({"name": f"{vm_name}-{index}", "cpus": 1, "memory_mib": 256}) for index in range(6)]
    try:

        def cost() -> int:
            conn.stats()  # the first sample of a VM enables its metering: not counted
            before = loopback_http.requests_served
            samples = {sample.uuid for sample in conn.stats()}
            assert {vm.uuid for vm in vms[:3]} <= samples
            return int(loopback_http.requests_served - before)

        with_six = cost()
        for vm in vms[3:]:
            vm.delete(force=True)
        assert cost() == with_six
    finally:
        for vm in vms:
            vm.delete(force=True)
