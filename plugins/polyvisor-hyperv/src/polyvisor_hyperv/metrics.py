"""Counters of every VM: Get-VM, Measure-VM (resource metering) and the hypervisor's virtual processor counters,
in at most four requests whatever the number of VMs, mapped onto :class:`~polyvisor.metrics.VMStats`.

* **CPU** comes from the ``Hyper-V Hypervisor Virtual Processor`` counter set, which Microsoft recommends for guest
  CPU: Get-Counter takes counter paths in the host's display language, so a path written in English fails on a
  German host. polyvisor reads the set's raw WMI class instead (:data:`VP_CLASS`, with ``Get-CimInstance
  -ClassName``): WMI performance class and property names are built from the provider's
  invariant names, the same on every host language (Microsoft, "Performance Counter Provider"). Its
  ``PercentGuestRunTime`` and ``PercentTotalRunTime`` raw values are ``PERF_100NSEC_TIMER`` counters: 100 ns ticks
  a virtual processor ran the guest (and the guest plus the hypervisor's work for it) since its partition started,
  so they map onto ``vcpu_times_ns`` and ``cpu_time_ns`` unchanged but for the unit. Instances are named
  ``<VM name>:Hv VP <n>``: two VMs with one name cannot be told apart, and their CPU fields say so.
* **Disks** come from resource metering: Measure-VM's ``AggregatedDiskDataRead`` / ``AggregatedDiskDataWritten``,
  whole megabytes that all of a VM's disks moved since metering was enabled (restarts do not reset them). Metering
  is off until ``Enable-VMResourceMetering``: polyvisor enables it on the VMs it samples that lack it (once per VM;
  it costs the host little and keeps no data polyvisor does not read). They become one disk named ``all``.
* **Memory**: ``MemoryAssigned`` is ``memory.current_bytes``. Hyper-V reports no guest-free memory and no host
  process holding the VM's memory, so ``unused``, ``usable`` and ``rss`` are None, with those reasons.
* **NICs**: resource metering counts traffic only per port ACL, in megabytes, so none are reported (declared).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from polyvisor.metrics.counters import DiskCounters, MemoryCounters, VMStats
from polyvisor.model import PowerState
from polyvisor_hyperv.client import HyperVClient, MiB, as_guid, as_text
from polyvisor_hyperv.commands import Step
from polyvisor_hyperv.states import to_status
from polyvisor_hyperv.transport import Row

__all__ = ["VP_CLASS", "Metrics"]

VP_CLASS = "Win32_PerfRawData_HvStats_HyperVHypervisorVirtualProcessor"
"""The raw WMI class of the ``Hyper-V Hypervisor Virtual Processor`` counter set (its name is locale-free)."""
_VP_NAME = re.compile(r"^(?P<vm>.*):Hv VP (?P<index>\d+)$")
_TICK_NS = 100
_DOING = "sampling VM counters"
_NO_FREE = "Hyper-V does not report how much memory the guest leaves unused (its dynamic-memory demand is not that)"
_NO_RSS = "Hyper-V holds a VM's memory in its partition, not in a host process: there is no resident set to report"
_NO_NICS = (
    "Hyper-V's resource metering counts network traffic only per port ACL (Add-VMNetworkAdapterAcl), in "
    "megabytes; per-adapter counters are not read"
)
_DISKS = (
    "Hyper-V's resource metering adds up what all of a VM's disks read and wrote since metering was enabled, in "
    "whole megabytes, without request counts: one disk named 'all'"
)


class Metrics:
    """Samples of the VMs' counters, over one client."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client
        self._host_cpus: int | None = None

    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        """Every VM's counters (or these VMs'): Get-VM, Enable-VMResourceMetering where needed, Measure-VM and the
        virtual processor class."""
        run = self._client.run
        if self._host_cpus is None:
            host = run([Step("Get-VMHost")], doing=_DOING, select=("LogicalProcessorCount",))
            count = int(host[0].get("LogicalProcessorCount") or 0) if host else 0
            self._host_cpus = count or None
        vms = run(
            [Step("Get-VM")],
            doing=_DOING,
            select=("Id", "Name", "State", "ProcessorCount", "MemoryAssigned", "ResourceMeteringEnabled"),
        )
        wanted = None if uuids is None else {as_guid(uuid) for uuid in uuids}
        chosen = [row for row in vms if wanted is None or as_guid(row.get("Id")) in wanted]
        if not chosen:
            return []
        unmetered = sorted({as_text(row.get("Name")) for row in chosen if not row.get("ResourceMeteringEnabled")})
        if unmetered:
            run([Step("Enable-VMResourceMetering", {"VMName": unmetered})], doing="enabling metering")
        names = sorted({as_text(row.get("Name")) for row in chosen})
        reports = run(
            [Step("Measure-VM", {"Name": names})],
            doing=_DOING,
            select=("VMId", "AggregatedDiskDataRead", "AggregatedDiskDataWritten"),
        )
        processors = run(
            [Step("Get-CimInstance", {"ClassName": VP_CLASS})],
            doing=_DOING,
            select=("Name", "PercentGuestRunTime", "PercentTotalRunTime"),
        )
        at = time.time()
        metered = {as_guid(row.get("VMId")): row for row in reports}
        vps = _by_vm(processors)
        counts: dict[str, int] = {}
        for row in vms:
            counts[as_text(row.get("Name"))] = counts.get(as_text(row.get("Name")), 0) + 1
        return [self._sample(row, metered, vps, counts, at) for row in chosen]

    def _sample(
        self,
        row: Row,
        metered: dict[str, Row],
        vps: dict[str, dict[int, Row]],
        counts: dict[str, int],
        at: float,
    ) -> VMStats:
        uuid, name = as_guid(row.get("Id")), as_text(row.get("Name"))
        self._client.remember(uuid, name)
        status = to_status(row.get("State"))
        cpus = int(row.get("ProcessorCount") or 0) or None
        missing = {
            "memory.unused_bytes": _NO_FREE,
            "memory.usable_bytes": _NO_FREE,
            "memory.rss_bytes": _NO_RSS,
            "nics": _NO_NICS,
            "disks": _DISKS,
        }
        cpu_time: int | None = None
        vcpu_times: tuple[int | None, ...] | None = None
        mine = vps.get(name, {})
        if counts.get(name, 0) > 1:
            missing["cpu_time_ns"] = missing["vcpu_times_ns"] = (
                f"{counts[name]} VMs are named {name!r}, and Hyper-V names virtual processor counters by VM name; "
                "rename one to tell them apart"
            )
        elif not mine:
            missing["cpu_time_ns"] = missing["vcpu_times_ns"] = (
                f"the VM is {status.state.value}: the hypervisor counts virtual processor time only while its "
                "partition runs"
            )
        else:
            cpu_time = sum(int(vp.get("PercentTotalRunTime") or 0) for vp in mine.values()) * _TICK_NS
            count = max(cpus or 0, max(mine) + 1)
            vcpu_times = tuple(
                int(mine[index].get("PercentGuestRunTime") or 0) * _TICK_NS if index in mine else None
                for index in range(count)
            )
        report = metered.get(uuid)
        disks: tuple[DiskCounters, ...] = ()
        if report is not None:
            disks = (
                DiskCounters(
                    "all",
                    read_bytes=int(report.get("AggregatedDiskDataRead") or 0) * MiB,
                    write_bytes=int(report.get("AggregatedDiskDataWritten") or 0) * MiB,
                ),
            )
        assigned = row.get("MemoryAssigned")
        current = int(assigned) if assigned and status.state is not PowerState.STOPPED else None
        if current is None:
            missing["memory.current_bytes"] = f"the VM is {status.state.value}: it holds no memory"
        return VMStats(
            uuid,
            name,
            status,
            at,
            cpus=cpus,
            host_cpus=self._host_cpus,
            cpu_time_ns=cpu_time,
            vcpu_times_ns=vcpu_times,
            memory=MemoryCounters(current_bytes=current),
            disks=disks,
            missing=missing,
        )


def _by_vm(rows: list[Row]) -> dict[str, dict[int, Row]]:
    """The virtual processor instances by VM name and VP number (``_Total`` left out)."""
    out: dict[str, dict[int, Row]] = {}
    for row in rows:
        match = _VP_NAME.match(as_text(row.get("Name")))
        if match:
            out.setdefault(match["vm"], {})[int(match["index"])] = row
    return out
