"""Rates from two samples: CPU shares stay within 0-100 %, rates never go negative, resets count from zero."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyvisor import PowerState, ValidationError, VMStatus
from polyvisor.metrics import DiskCounters, NicCounters, VMStats, rates, rates_by_uuid

UP = VMStatus(PowerState.RUNNING, "running")
counters = st.integers(min_value=0, max_value=2**63)


def sample(at: float, cpu: int | None, vcpus: tuple[int | None, ...] | None = None, **kw: object) -> VMStats:
    return VMStats("u", "vm", UP, sampled_at=at, cpus=2, host_cpus=8, cpu_time_ns=cpu, vcpu_times_ns=vcpus, **kw)  # type: ignore[arg-type]


def test_shares_of_the_vm_and_of_the_host() -> None:
    rated = rates(sample(0.0, 0, (0, 0)), sample(10.0, 12 * 10**9, (5 * 10**9, 5 * 10**9)))
    assert rated.cpu_percent == 50.0  # from the vCPUs' own times: 10 s of guest time over 2 vCPUs x 10 s
    assert rated.vcpu_percent == (50.0, 50.0)
    assert rated.host_cpu_percent == 15.0  # all CPU time (12 s, emulator included) over 8 CPUs x 10 s
    assert not rated.restarted


def test_without_vcpu_times_the_vm_share_comes_from_cpu_time() -> None:
    assert rates(sample(0.0, 0), sample(4.0, 2 * 10**9)).cpu_percent == 25.0


def test_a_share_above_the_vcpus_is_clamped() -> None:
    assert rates(sample(0.0, 0), sample(1.0, 3 * 10**9)).cpu_percent == 100.0


def test_a_counter_that_went_back_counts_from_zero() -> None:
    before = sample(0.0, 50 * 10**9, disks=(DiskCounters("vda", read_bytes=10**9),))
    after = sample(10.0, 2 * 10**9, disks=(DiskCounters("vda", read_bytes=4000),))
    rated = rates(before, after)
    assert rated.restarted
    assert rated.host_cpu_percent == 2.5
    assert rated.disks[0].read_bytes_per_second == 400.0
    assert rated.disk_read_bytes_per_second == 400.0


def test_devices_are_matched_by_name_and_new_ones_left_out() -> None:
    before = sample(0.0, 0, nics=(NicCounters("vnet0", rx_bytes=0, tx_bytes=0),))
    after = sample(2.0, 0, nics=(NicCounters("vnet0", rx_bytes=200, tx_bytes=100), NicCounters("vnet1", rx_bytes=5)))
    rated = rates(before, after)
    assert [nic.name for nic in rated.nics] == ["vnet0"]
    assert (rated.rx_bytes_per_second, rated.tx_bytes_per_second) == (100.0, 50.0)


def test_a_missing_counter_gives_no_rate() -> None:
    rated = rates(sample(0.0, None), sample(1.0, 10))
    assert rated.cpu_percent is None
    assert rated.host_cpu_percent is None
    assert rated.disk_read_bytes_per_second is None


def test_samples_out_of_order_or_of_two_vms_are_refused() -> None:
    with pytest.raises(ValidationError, match="after the first"):
        rates(sample(5.0, 0), sample(5.0, 0))
    other = VMStats("v", "other", UP, sampled_at=9.0)
    with pytest.raises(ValidationError, match="different VMs"):
        rates(sample(0.0, 0), other)


def test_rates_by_uuid_pairs_the_vms_sampled_twice() -> None:
    gone = VMStats("gone", "gone", UP, sampled_at=0.0)
    assert set(rates_by_uuid([sample(0.0, 0), gone], [sample(1.0, 10)])) == {"u"}


@given(
    old=counters,
    new=counters,
    vcpus_old=st.lists(counters, min_size=1, max_size=4),
    vcpus_new=st.lists(counters, min_size=1, max_size=4),
    seconds=st.floats(min_value=1e-6, max_value=1e6),
    read_old=counters,
    read_new=counters,
)
def test_rates_are_never_negative_and_shares_stay_in_range(
    old: int, new: int, vcpus_old: list[int], vcpus_new: list[int], seconds: float, read_old: int, read_new: int
) -> None:
    before = sample(100.0, old, tuple(vcpus_old), disks=(DiskCounters("vda", read_bytes=read_old),))
    after = sample(100.0 + seconds, new, tuple(vcpus_new), disks=(DiskCounters("vda", read_bytes=read_new),))
    rated = rates(before, after)
    shares = [rated.cpu_percent, rated.host_cpu_percent]
    assert all(share is not None and 0.0 <= share <= 100.0 for share in shares)
    # A vCPU added between the samples (hot-plug) has no rate yet; the others stay in range.
    assert all(share is None or 0.0 <= share <= 100.0 for share in rated.vcpu_percent)
    read = rated.disks[0].read_bytes_per_second
    assert read is not None
    assert read >= 0.0
    assert rated.restarted == (
        new < old or read_new < read_old or any(b < a for a, b in zip(vcpus_old, vcpus_new, strict=False))
    )
