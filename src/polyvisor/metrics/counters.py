"""What :meth:`polyvisor.Connection.stats` returns: one sample of a VM's counters, as frozen values.

Every number is a counter since the VM's guest last booted (CPU nanoseconds, bytes, requests, packets) or a gauge
(memory bytes), never a rate: :func:`polyvisor.metrics.rates` turns two samples into rates. A number the backend
cannot give is ``None``, and :attr:`VMStats.missing` says why under the field's dotted name
(``"memory.unused_bytes"``, ``"vcpu_times_ns"``); a zero is always a measured zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from polyvisor.model import VMStatus

__all__ = ["DiskCounters", "MemoryCounters", "NicCounters", "VMStats"]


@dataclass(frozen=True, slots=True)
class DiskCounters:
    """One disk's I/O since the guest booted."""

    name: str
    """The disk's target name (libvirt ``vda``) or its controller location (Hyper-V ``SCSI 0:0``)."""
    read_bytes: int | None = None
    write_bytes: int | None = None
    read_requests: int | None = None
    write_requests: int | None = None


@dataclass(frozen=True, slots=True)
class NicCounters:
    """One network interface's traffic since the guest booted, as the guest sees it (rx: into the guest)."""

    name: str
    """The host-side interface (libvirt ``vnet0``) or the adapter's name (Hyper-V)."""
    mac: str | None = None
    rx_bytes: int | None = None
    rx_packets: int | None = None
    rx_errors: int | None = None
    rx_drops: int | None = None
    tx_bytes: int | None = None
    tx_packets: int | None = None
    tx_errors: int | None = None
    tx_drops: int | None = None


@dataclass(frozen=True, slots=True)
class MemoryCounters:
    """Memory gauges: what the VM holds, and what its guest says it does with it (balloon statistics)."""

    current_bytes: int | None = None
    """Memory the VM has now (the balloon's size; Hyper-V: assigned memory)."""
    unused_bytes: int | None = None
    """Memory the guest leaves entirely unused (needs the guest's balloon driver and a stats period)."""
    usable_bytes: int | None = None
    """Memory the guest could use without swapping (needs the guest's balloon driver and a stats period)."""
    rss_bytes: int | None = None
    """Host memory the VM's process holds resident."""


@dataclass(frozen=True, slots=True)
class VMStats:
    """One VM's counters at one moment.

    ``sampled_at`` is the client's wall clock (seconds since the epoch) when the answer arrived; rates divide by the
    difference of two samples' ``sampled_at``. ``host_cpus`` is the host's logical CPU count, for CPU shares of the
    host. Counters restart from zero when the guest boots again (a restart, a restore, a migration to a new
    process): :func:`polyvisor.metrics.rates` treats a counter that went back as restarted.
    """

    uuid: str
    name: str
    status: VMStatus
    sampled_at: float
    cpus: int | None = None
    """vCPUs the VM has now."""
    host_cpus: int | None = None
    cpu_time_ns: int | None = None
    """CPU time the VM used, every vCPU and the hypervisor's work for it together."""
    vcpu_times_ns: tuple[int | None, ...] | None = None
    """CPU time each vCPU ran the guest, by vCPU number."""
    memory: MemoryCounters = field(default_factory=MemoryCounters)
    disks: tuple[DiskCounters, ...] = ()
    nics: tuple[NicCounters, ...] = ()
    missing: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Why a field is None (or a device list empty), by the field's dotted name: ``{"memory.unused_bytes": "..."}``."""

    def __post_init__(self) -> None:
        if not isinstance(self.missing, MappingProxyType):
            object.__setattr__(self, "missing", MappingProxyType(dict(self.missing)))

    def why_missing(self, name: str) -> str | None:
        """Return why the field ``name`` (``"cpu_time_ns"``, ``"memory.usable_bytes"``) has no value, or None."""
        return self.missing.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The sample as plain JSON-ready values (what ``polyvisor stats --json`` prints)."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "state": self.status.state.value,
            "raw_state": self.status.raw_state,
            "sampled_at": self.sampled_at,
            "cpus": self.cpus,
            "host_cpus": self.host_cpus,
            "cpu_time_ns": self.cpu_time_ns,
            "vcpu_times_ns": None if self.vcpu_times_ns is None else list(self.vcpu_times_ns),
            "memory": _fields(self.memory),
            "disks": [_fields(disk) for disk in self.disks],
            "nics": [_fields(nic) for nic in self.nics],
            "missing": dict(self.missing),
        }


def _fields(value: DiskCounters | NicCounters | MemoryCounters) -> dict[str, Any]:
    return {item.name: getattr(value, item.name) for item in fields(value)}
