"""Cmdlets for resource metering and performance counters: Enable-/Disable-VMResourceMetering, Measure-VM, and
the instances of the one counter class polyvisor reads (the raw ``Hyper-V Hypervisor Virtual Processor``
counters), which Get-CimInstance (:mod:`.cim`) lists."""

from __future__ import annotations

import datetime

from psrpcore.types import PSObject, PSUInt64

from polyvisor_hyperv_loopback.hyperv.metering import PERF_FREQUENCY
from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.values import new_custom_object

from .base import Cmdlet, CommandContext, Param
from .vm import resolve_vms

__all__ = ["CIMV2", "CMDLETS", "VP_CLASS", "vp_instances"]

CMD = "Microsoft.HyperV.PowerShell.Commands"
VP_CLASS = "Win32_PerfRawData_HvStats_HyperVHypervisorVirtualProcessor"
"""The raw WMI class of the ``Hyper-V Hypervisor Virtual Processor`` counter set (named in English on every host)."""
CIMV2 = "root/cimv2"


def _enable(enable: bool) -> object:
    def body(ctx: CommandContext, args: dict[str, object]) -> None:
        for vm in resolve_vms(ctx, args, name_param="VMName"):
            if ctx.should_process(high_impact=False):
                (ctx.host.metering.enable if enable else ctx.host.metering.disable)(vm.id)

    return body


def _measure_vm(ctx: CommandContext, args: dict[str, object]) -> None:
    for vm in resolve_vms(ctx, args):
        try:
            report = ctx.host.metering.measure(vm.id)
        except HostError as exc:
            ctx.write_error(exc)
            continue
        obj = new_custom_object(
            [
                ("ComputerName", ctx.host.computer_name),
                ("VMId", vm.id),
                ("VMName", vm.name),
                ("MeteringDuration", datetime.timedelta(seconds=int(report.duration_seconds))),
                ("AverageProcessorUsage", PSUInt64(0)),
                ("AverageMemoryUsage", PSUInt64(report.average_memory_mb)),
                ("MaximumMemoryUsage", PSUInt64(report.average_memory_mb)),
                ("MinimumMemoryUsage", PSUInt64(report.average_memory_mb)),
                ("TotalDiskAllocation", PSUInt64(0)),
                ("AggregatedDiskDataRead", PSUInt64(report.disk_read_mb)),
                ("AggregatedDiskDataWritten", PSUInt64(report.disk_written_mb)),
                ("HardDiskMetrics", []),
                ("NetworkMeteredTrafficReport", []),
            ]
        )
        obj.PSObject.type_names.insert(0, f"{CMD[: -len('.Commands')]}.VMMeteringReportForVirtualMachine")
        ctx.write(obj)


def vp_instances(ctx: CommandContext) -> list[PSObject]:
    """The instances of :data:`VP_CLASS` (Get-CimInstance of it, in root/cimv2)."""
    stamp = ctx.host.metering.perf_time()
    out = []
    for vp in ctx.host.metering.virtual_processors():
        obj = new_custom_object(
            [
                ("Name", vp.name),
                ("PercentGuestRunTime", PSUInt64(vp.guest_run_time)),
                ("PercentHypervisorRunTime", PSUInt64(vp.hypervisor_run_time)),
                ("PercentTotalRunTime", PSUInt64(vp.total_run_time)),
                ("Frequency_PerfTime", PSUInt64(PERF_FREQUENCY)),
                ("Timestamp_PerfTime", PSUInt64(stamp)),
                ("Frequency_Sys100NS", PSUInt64(10_000_000)),
            ]
        )
        obj.PSObject.type_names.insert(0, f"Microsoft.Management.Infrastructure.CimInstance#{CIMV2}/{VP_CLASS}")
        out.append(obj)
    return out


_VM = (Param("VMName", "str[]", position=0, aliases=("Name",)), Param("VM", "object[]", pipeline=True))

CMDLETS = (
    Cmdlet("Enable-VMResourceMetering", f"{CMD}.EnableVMResourceMetering", _VM, _enable(True)),  # type: ignore[arg-type]
    Cmdlet("Disable-VMResourceMetering", f"{CMD}.DisableVMResourceMetering", _VM, _enable(False)),  # type: ignore[arg-type]
    Cmdlet(
        "Measure-VM",
        f"{CMD}.MeasureVM",
        (Param("Name", "str[]", position=0, aliases=("VMName",)), Param("VM", "object[]", pipeline=True)),
        _measure_vm,
    ),
)
