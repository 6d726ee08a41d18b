"""Counters: one bulk sample covers every VM, what a backend cannot say is declared, and counters never go back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import pytest

from polyvisor import VM, Connection, Feature, NotFoundError, PowerState
from polyvisor.metrics import VMStats, rates
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


@pytest.fixture(autouse=True)
def _stats_declared(polyvisor_connection: Connection) -> None:
    require(polyvisor_connection, Feature.STATS)


def unexplained(sample: VMStats) -> list[str]:
    """The fields of a sample that are None without a reason in ``missing`` (the contract: declared, not zero)."""
    gaps = []
    for name in ("cpus", "host_cpus", "cpu_time_ns", "vcpu_times_ns"):
        if getattr(sample, name) is None and name not in sample.missing:
            gaps.append(name)
    for item in fields(sample.memory):
        dotted = f"memory.{item.name}"
        if getattr(sample.memory, item.name) is None and not ({dotted, "memory"} & set(sample.missing)):
            gaps.append(dotted)
    return gaps


def test_one_sample_covers_every_vm_and_explains_what_it_lacks(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    stopped = polyvisor_vm_factory("st")
    running = polyvisor_vm_factory("st")
    running.start()
    samples = {sample.uuid: sample for sample in polyvisor_connection.stats()}
    assert {stopped.uuid, running.uuid} <= set(samples)
    assert samples[stopped.uuid].status.state is PowerState.STOPPED
    assert samples[running.uuid].status.state is PowerState.RUNNING
    for sample in samples.values():
        assert unexplained(sample) == [], f"{sample.name}: None without a reason"
        assert all(reason for reason in sample.missing.values())
    cpus = samples[running.uuid].cpus
    assert cpus is None or cpus >= 1  # None only with its reason (checked above)


def test_counters_of_a_running_vm_never_go_back_and_rates_stay_in_range(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("st")
    vm.start()
    first = vm.stats()
    second = vm.stats()
    assert second.uuid == vm.uuid
    assert second.sampled_at > first.sampled_at
    if first.cpu_time_ns is not None and second.cpu_time_ns is not None:
        assert second.cpu_time_ns >= first.cpu_time_ns
    for old, new in zip(first.disks, second.disks, strict=False):
        if old.read_bytes is not None and new.read_bytes is not None:
            assert new.read_bytes >= old.read_bytes
    rated = rates(first, second)
    assert not rated.restarted
    for share in (rated.cpu_percent, rated.host_cpu_percent, *rated.vcpu_percent):
        assert share is None or 0.0 <= share <= 100.0


def test_stats_of_a_deleted_vm_is_not_found(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("st")
    vm.delete(storage=vm.connection.supports(Feature.DELETE_STORAGE))
    with pytest.raises(NotFoundError):
        vm.stats()
