"""A fleet's samples as Prometheus metric families, named by Prometheus's conventions (no I/O).

Counters end in ``_total`` and are in base units (``_seconds``, ``_bytes``); gauges carry their unit. Every VM series
has the labels ``host`` (the fleet's name for the host), ``vm``, ``uuid`` and ``backend`` (the URI's driver:
``qemu``, ``hyperv``, ``memory``), and per device ``vcpu``, ``disk`` or ``interface``. A figure a backend cannot give
has no series at all, never a zero (its reason is in the sample's ``missing``, which ``polyvisor stats --json``
shows). Each host has ``polyvisor_scrape_success`` and ``polyvisor_scrape_duration_seconds``, so a host that failed
or timed out is a 0 and a duration, not a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from polyvisor.fleet.results import FleetResult
from polyvisor.metrics.counters import DiskCounters, NicCounters, VMStats

__all__ = ["PREFIX", "metric_families"]

PREFIX = "polyvisor_"
_VM = ("host", "vm", "uuid", "backend")
_NS = 1e9


@dataclass(frozen=True, slots=True)
class _Device:
    """A per-device counter: its name (less the prefix and ``_total``), its help, and the field it reads."""

    name: str
    documentation: str
    field: str


_DISK = (
    _Device("vm_disk_read_bytes", "Bytes the VM read from the disk.", "read_bytes"),
    _Device("vm_disk_written_bytes", "Bytes the VM wrote to the disk.", "write_bytes"),
    _Device("vm_disk_reads", "Read requests the VM made of the disk.", "read_requests"),
    _Device("vm_disk_writes", "Write requests the VM made of the disk.", "write_requests"),
)
_NIC = (
    _Device("vm_network_receive_bytes", "Bytes the interface received for the VM.", "rx_bytes"),
    _Device("vm_network_receive_packets", "Packets the interface received for the VM.", "rx_packets"),
    _Device("vm_network_receive_errors", "Received packets the interface found in error.", "rx_errors"),
    _Device("vm_network_receive_drops", "Received packets the interface dropped.", "rx_drops"),
    _Device("vm_network_transmit_bytes", "Bytes the VM sent through the interface.", "tx_bytes"),
    _Device("vm_network_transmit_packets", "Packets the VM sent through the interface.", "tx_packets"),
    _Device("vm_network_transmit_errors", "Packets the VM sent that failed.", "tx_errors"),
    _Device("vm_network_transmit_drops", "Packets the VM sent that the interface dropped.", "tx_drops"),
)


def metric_families(result: FleetResult[list[VMStats]], backends: Mapping[str, str]) -> list[Metric]:
    """Return the metric families of one fleet sample; ``backends`` maps each host to its URI's driver."""
    success = GaugeMetricFamily(
        f"{PREFIX}scrape_success", "Whether the host answered this scrape (1) or failed or timed out (0).", labels=_HOST
    )
    duration = GaugeMetricFamily(
        f"{PREFIX}scrape_duration_seconds",
        "Seconds sampling the host took in this scrape (its timeout, for a host that did not answer).",
        labels=_HOST,
    )
    host_cpus = GaugeMetricFamily(f"{PREFIX}host_cpus", "The host's logical CPUs.", labels=_HOST)
    host_vms = GaugeMetricFamily(f"{PREFIX}host_vms", "VMs the host has, in any state.", labels=_HOST)
    vms = _VMFamilies()
    for key, outcome in result.items():
        labels = [key, backends.get(key, "")]
        success.add_metric(labels, 1.0 if outcome.ok else 0.0)
        duration.add_metric(labels, outcome.elapsed)
        if not outcome.ok or outcome.value is None:
            continue
        host_vms.add_metric(labels, float(len(outcome.value)))
        cpus = next((sample.host_cpus for sample in outcome.value if sample.host_cpus), None)
        if cpus:
            host_cpus.add_metric(labels, float(cpus))
        for sample in outcome.value:
            vms.add(key, labels[1], sample)
    return [success, duration, host_cpus, host_vms, *vms.families()]


_HOST = ("host", "backend")


class _VMFamilies:
    """The VM families, filled one sample at a time."""

    def __init__(self) -> None:
        self.info = InfoMetricFamily(
            f"{PREFIX}vm", "The VM's power state, normalized and as the backend says it.", labels=_VM
        )
        self.vcpus = GaugeMetricFamily(f"{PREFIX}vm_vcpus", "vCPUs the VM has now.", labels=_VM)
        self.cpu = CounterMetricFamily(
            f"{PREFIX}vm_cpu_seconds",
            "CPU time the VM used since its guest booted: every vCPU and the hypervisor's work for it.",
            labels=_VM,
        )
        self.vcpu = CounterMetricFamily(
            f"{PREFIX}vm_vcpu_seconds", "CPU time the vCPU ran the guest since it booted.", labels=(*_VM, "vcpu")
        )
        self.memory = {
            "current_bytes": GaugeMetricFamily(f"{PREFIX}vm_memory_bytes", "Memory the VM has now.", labels=_VM),
            "unused_bytes": GaugeMetricFamily(
                f"{PREFIX}vm_memory_unused_bytes",
                "Memory the guest leaves unused (its balloon driver says).",
                labels=_VM,
            ),
            "usable_bytes": GaugeMetricFamily(
                f"{PREFIX}vm_memory_usable_bytes",
                "Memory the guest could use without swapping (its balloon driver says).",
                labels=_VM,
            ),
            "rss_bytes": GaugeMetricFamily(
                f"{PREFIX}vm_memory_rss_bytes", "Host memory the VM's process holds resident.", labels=_VM
            ),
        }
        self.disks = [CounterMetricFamily(PREFIX + d.name, d.documentation, labels=(*_VM, "disk")) for d in _DISK]
        self.nics = [CounterMetricFamily(PREFIX + d.name, d.documentation, labels=(*_VM, "interface")) for d in _NIC]

    def add(self, host: str, backend: str, sample: VMStats) -> None:
        labels = [host, sample.name, sample.uuid, backend]
        self.info.add_metric(labels, {"state": sample.status.state.value, "raw_state": sample.status.raw_state or ""})
        if sample.cpus is not None:
            self.vcpus.add_metric(labels, float(sample.cpus))
        if sample.cpu_time_ns is not None:
            self.cpu.add_metric(labels, sample.cpu_time_ns / _NS)
        for index, ns in enumerate(sample.vcpu_times_ns or ()):
            if ns is not None:
                self.vcpu.add_metric([*labels, str(index)], ns / _NS)
        for field, family in self.memory.items():
            value = getattr(sample.memory, field)
            if value is not None:
                family.add_metric(labels, float(value))
        _devices(self.disks, _DISK, labels, sample.disks)
        _devices(self.nics, _NIC, labels, sample.nics)

    def families(self) -> list[Metric]:
        return [self.info, self.vcpus, self.cpu, self.vcpu, *self.memory.values(), *self.disks, *self.nics]


def _devices(
    families: list[CounterMetricFamily],
    devices: tuple[_Device, ...],
    labels: list[str],
    counters: Iterable[DiskCounters | NicCounters],
) -> None:
    for counter in counters:
        for family, device in zip(families, devices, strict=True):
            value = getattr(counter, device.field)
            if value is not None:
                family.add_metric([*labels, counter.name], float(value))
