"""Rates from two samples: CPU shares and bytes per second, with counters that restarted counted from zero.

A counter that went back between two samples was reset: the guest booted again (a restart, a restore from saved
state) or moved to a new process (a migration). The increase is then taken to be the new value (what accrued since
the reset), as Prometheus's ``rate()`` does, and :attr:`VMRates.restarted` says so; the rate never goes negative.

CPU shares are clamped to 0-100 %: ``cpu_time_ns`` includes the hypervisor's work for the VM (QEMU's emulator and
I/O threads) and the samples are timed on the client when each answer arrives, so a busy VM's raw ratio can exceed
its vCPUs by a little; a share above 100 % says nothing true.

>>> from polyvisor.metrics import VMStats, rates
>>> from polyvisor.model import PowerState, VMStatus
>>> up = VMStatus(PowerState.RUNNING, "running")
>>> a = VMStats("u", "web", up, sampled_at=100.0, cpus=2, host_cpus=8, cpu_time_ns=5_000_000_000)
>>> b = VMStats("u", "web", up, sampled_at=110.0, cpus=2, host_cpus=8, cpu_time_ns=15_000_000_000)
>>> r = rates(a, b)
>>> r.cpu_percent, r.host_cpu_percent
(50.0, 12.5)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from polyvisor.errors import ValidationError
from polyvisor.metrics.counters import DiskCounters, NicCounters, VMStats

__all__ = ["DiskRates", "NicRates", "VMRates", "rates", "rates_by_uuid"]

_NS = 1_000_000_000
_Device = TypeVar("_Device", DiskCounters, NicCounters)


@dataclass(frozen=True, slots=True)
class DiskRates:
    """One disk's I/O per second between two samples."""

    name: str
    read_bytes_per_second: float | None
    write_bytes_per_second: float | None
    read_requests_per_second: float | None
    write_requests_per_second: float | None


@dataclass(frozen=True, slots=True)
class NicRates:
    """One interface's traffic per second between two samples (rx: into the guest)."""

    name: str
    rx_bytes_per_second: float | None
    tx_bytes_per_second: float | None
    rx_packets_per_second: float | None
    tx_packets_per_second: float | None


@dataclass(frozen=True, slots=True)
class VMRates:
    """A VM's rates over ``seconds``; None where a sample lacks the counter (see its ``missing``)."""

    uuid: str
    name: str
    seconds: float
    cpu_percent: float | None
    """CPU used, as a share of the VM's own vCPUs (100: every vCPU busy all the time)."""
    host_cpu_percent: float | None
    """CPU used, as a share of all the host's logical CPUs."""
    vcpu_percent: tuple[float | None, ...]
    """Each vCPU's share of its time spent running the guest."""
    disks: tuple[DiskRates, ...]
    nics: tuple[NicRates, ...]
    restarted: bool
    """Whether some counter went back between the samples (the guest booted again, or the VM migrated)."""

    @property
    def disk_read_bytes_per_second(self) -> float | None:
        """Every disk's reads together (None when no disk has the counter)."""
        return _total(disk.read_bytes_per_second for disk in self.disks)

    @property
    def disk_write_bytes_per_second(self) -> float | None:
        """Every disk's writes together."""
        return _total(disk.write_bytes_per_second for disk in self.disks)

    @property
    def rx_bytes_per_second(self) -> float | None:
        """Every interface's received bytes together."""
        return _total(nic.rx_bytes_per_second for nic in self.nics)

    @property
    def tx_bytes_per_second(self) -> float | None:
        """Every interface's sent bytes together."""
        return _total(nic.tx_bytes_per_second for nic in self.nics)


def rates(before: VMStats, after: VMStats) -> VMRates:
    """Return the rates between two samples of the same VM, ``before`` taken first.

    Raise :class:`~polyvisor.errors.ValidationError` for samples of different VMs, or not taken in that order.
    """
    if before.uuid != after.uuid:
        raise ValidationError(
            f"the samples are of different VMs ({before.uuid} and {after.uuid}); pass two samples of one VM",
            field="after",
        )
    seconds = after.sampled_at - before.sampled_at
    if not seconds > 0:
        raise ValidationError(
            f"the second sample must be taken after the first (they are {seconds:g} s apart); pass them in order",
            field="after",
        )
    track = _Increases()
    cpu = track.increase(before.cpu_time_ns, after.cpu_time_ns)
    vcpus = _pairs(before.vcpu_times_ns, after.vcpu_times_ns)
    vcpu_increases = [track.increase(old, new) for old, new in vcpus]
    vcpu_percent = tuple(_percent(increase, seconds, 1) for increase in vcpu_increases)
    if vcpu_increases and all(increase is not None for increase in vcpu_increases):
        guest = sum(increase for increase in vcpu_increases if increase is not None)
        cpu_percent = _percent(guest, seconds, len(vcpu_increases))
    else:
        cpu_percent = _percent(cpu, seconds, after.cpus)
    disks = tuple(_disk(track, old, new, seconds) for old, new in _matched(before.disks, after.disks))
    nics = tuple(_nic(track, old, new, seconds) for old, new in _matched(before.nics, after.nics))
    return VMRates(
        uuid=after.uuid,
        name=after.name,
        seconds=seconds,
        cpu_percent=cpu_percent,
        host_cpu_percent=_percent(cpu, seconds, after.host_cpus),
        vcpu_percent=vcpu_percent,
        disks=disks,
        nics=nics,
        restarted=track.restarted,
    )


def rates_by_uuid(before: Iterable[VMStats], after: Iterable[VMStats]) -> dict[str, VMRates]:
    """Return the rates of every VM sampled both times (two :meth:`polyvisor.Connection.stats` calls), by UUID."""
    first = {sample.uuid: sample for sample in before}
    return {sample.uuid: rates(first[sample.uuid], sample) for sample in after if sample.uuid in first}


class _Increases:
    """Increases of counters, noting any that went back (a reset)."""

    def __init__(self) -> None:
        self.restarted = False

    def increase(self, old: int | None, new: int | None) -> int | None:
        if old is None or new is None:
            return None
        if new < old:
            self.restarted = True
            return new  # what accrued since the reset
        return new - old

    def rate(self, old: int | None, new: int | None, seconds: float) -> float | None:
        increase = self.increase(old, new)
        return None if increase is None else increase / seconds


def _percent(increase_ns: int | None, seconds: float, cpus: int | None) -> float | None:
    if increase_ns is None or not cpus:
        return None
    return min(max(100.0 * increase_ns / (seconds * _NS * cpus), 0.0), 100.0)


def _pairs(old: Sequence[int | None] | None, new: Sequence[int | None] | None) -> list[tuple[int | None, int | None]]:
    if old is None or new is None:
        return []
    return [(old[index] if index < len(old) else None, value) for index, value in enumerate(new)]


def _matched(old: Sequence[_Device], new: Sequence[_Device]) -> list[tuple[_Device, _Device]]:
    by_name = {device.name: device for device in old}
    return [(by_name[device.name], device) for device in new if device.name in by_name]


def _disk(track: _Increases, old: DiskCounters, new: DiskCounters, seconds: float) -> DiskRates:
    return DiskRates(
        new.name,
        track.rate(old.read_bytes, new.read_bytes, seconds),
        track.rate(old.write_bytes, new.write_bytes, seconds),
        track.rate(old.read_requests, new.read_requests, seconds),
        track.rate(old.write_requests, new.write_requests, seconds),
    )


def _nic(track: _Increases, old: NicCounters, new: NicCounters, seconds: float) -> NicRates:
    return NicRates(
        new.name,
        track.rate(old.rx_bytes, new.rx_bytes, seconds),
        track.rate(old.tx_bytes, new.tx_bytes, seconds),
        track.rate(old.rx_packets, new.rx_packets, seconds),
        track.rate(old.tx_packets, new.tx_packets, seconds),
    )


def _total(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None
