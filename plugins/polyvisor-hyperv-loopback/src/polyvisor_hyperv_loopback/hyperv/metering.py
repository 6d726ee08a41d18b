"""Resource metering (Enable-/Disable-VMResourceMetering, Measure-VM) and the hypervisor's virtual processor
counters (the ``Hyper-V Hypervisor Virtual Processor`` counter set, read as its raw WMI class).

Each guest runs a known load, so tests can predict the figures: every virtual processor runs the guest
:data:`GUEST_LOAD` and the hypervisor :data:`HYPERVISOR_LOAD` of the time while the VM runs, counted in 100 ns
ticks since its partition started (the raw value of a ``PERF_100NSEC_TIMER`` counter); a running guest reads
:data:`READ_MB_PER_SECOND` and writes :data:`WRITE_MB_PER_SECOND` from its disks, which metering adds up in whole
megabytes from when it was enabled, across restarts, until it is disabled.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .records import VMRecord
from .state import HostState

__all__ = [
    "GUEST_LOAD",
    "HYPERVISOR_LOAD",
    "PERF_FREQUENCY",
    "READ_MB_PER_SECOND",
    "WRITE_MB_PER_SECOND",
    "Metering",
    "VPCounters",
]

GUEST_LOAD = 0.2
HYPERVISOR_LOAD = 0.02
READ_MB_PER_SECOND = 2.0
WRITE_MB_PER_SECOND = 0.5
_TICKS = 10_000_000  # 100 ns ticks per second
PERF_FREQUENCY = 10_000_000
"""Ticks per second of ``Timestamp_PerfTime`` (``Frequency_PerfTime``, the host's performance counter)."""
_PARTITION = frozenset({"Running", "Paused", "Pausing", "Resuming", "Saving", "Stopping", "Reset"})


@dataclass
class _Meter:
    read_mb: float = 0.0
    written_mb: float = 0.0
    since: float = 0.0
    """When metering started, on the host's clock."""
    counted_to: float = 0.0


@dataclass(frozen=True)
class VPCounters:
    """One instance of the virtual processor counter set: ``<VM name>:Hv VP <n>``, or ``_Total``."""

    name: str
    guest_run_time: int
    hypervisor_run_time: int

    @property
    def total_run_time(self) -> int:
        return self.guest_run_time + self.hypervisor_run_time


@dataclass(frozen=True)
class MeteringReport:
    """What Measure-VM reports for one VM."""

    vm: VMRecord
    duration_seconds: float
    disk_read_mb: int
    disk_written_mb: int
    average_memory_mb: int


class Metering:
    """Which VMs are metered, what their meters hold, and the hypervisor's per-VP run times."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition
        self._meters: dict[uuid.UUID, _Meter] = {}

    def enabled(self, vm_id: uuid.UUID) -> bool:
        """Whether resource metering is on for the VM (VirtualMachine.ResourceMeteringEnabled)."""
        with self._cond:
            return vm_id in self._meters

    def enable(self, vm_id: uuid.UUID) -> None:
        """Start metering (a VM already metered keeps its figures)."""
        with self._cond:
            self._state.vm_record(vm_id)
            now = self._state.now()
            self._meters.setdefault(vm_id, _Meter(since=now, counted_to=now))

    def disable(self, vm_id: uuid.UUID) -> None:
        """Stop metering and drop the figures."""
        with self._cond:
            self._state.vm_record(vm_id)
            self._meters.pop(vm_id, None)

    def measure(self, vm_id: uuid.UUID) -> MeteringReport:
        """Return the VM's metering report; a VM that is not metered is an error."""
        with self._cond:
            vm = self._state.vm_record(vm_id)
            meter = self._meters.get(vm_id)
            if meter is None:
                # ASSUMPTION: the wording and error id of Measure-VM on a VM without resource metering.
                raise HostError(
                    f"Resource metering is not enabled for virtual machine '{vm.name}'. "
                    "Enable it with Enable-VMResourceMetering.",
                    error_id="InvalidOperation",
                    category="InvalidOperation",
                    target_name=vm.name,
                )
            now = self._state.now()
            if vm.state == "Running" and vm.started_at is not None:
                ran = max(now - max(meter.counted_to, vm.started_at), 0.0)
                meter.read_mb += ran * READ_MB_PER_SECOND
                meter.written_mb += ran * WRITE_MB_PER_SECOND
            meter.counted_to = now
            memory = vm.config.memory_startup // (1024 * 1024) if vm.state in _PARTITION else 0
            return MeteringReport(vm, now - meter.since, int(meter.read_mb), int(meter.written_mb), memory)

    def perf_time(self) -> int:
        """The host's performance counter now (``Timestamp_PerfTime``), in :data:`PERF_FREQUENCY` ticks a second."""
        return int(self._state.now() * PERF_FREQUENCY)

    def virtual_processors(self) -> list[VPCounters]:
        """Every running partition's virtual processors, then ``_Total``."""
        with self._cond:
            now = self._state.now()
            out = []
            for vm in sorted(self._state.vms.values(), key=lambda v: v.name.casefold()):
                if vm.state not in _PARTITION or vm.started_at is None:
                    continue
                ticks = (now - vm.started_at) * _TICKS
                for index in range(vm.config.processor_count):
                    out.append(
                        VPCounters(f"{vm.name}:Hv VP {index}", int(ticks * GUEST_LOAD), int(ticks * HYPERVISOR_LOAD))
                    )
            total = VPCounters(
                "_Total", sum(vp.guest_run_time for vp in out), sum(vp.hypervisor_run_time for vp in out)
            )
            return [*out, total]
