"""Counters of every domain in one ``getAllDomainStats`` (one VM: ``domainListGetStats``), as polyvisor's
:class:`~polyvisor.metrics.VMStats`.

libvirt reports a domain's counters only while its QEMU process runs; for a stopped or saved domain the sample
holds its state and says why the rest is missing. Balloon statistics (``unused``, ``usable``) need the guest's
virtio-balloon driver and a statistics period on the balloon, which libvirt leaves at 0 (off) unless the domain XML
sets one. With no period the driver reports once, when it loads, and QEMU keeps that boot-time snapshot: figures that
never change. So the first sample of each boot of a running domain reads its live XML, and where the balloon has no
period sets a live one of :data:`STATS_PERIOD` seconds (``virDomainSetMemoryStatsPeriod``; a period the domain XML
sets is kept). Until the guest reports after that (its ``balloon.last-update`` moves), the fields are None and say
so; a domain whose period could not be set says how to set one.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import libvirt

from polyvisor.errors import NotFoundError
from polyvisor.metrics.counters import DiskCounters, MemoryCounters, NicCounters, VMStats
from polyvisor.model import PowerState, VMStatus
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.states import to_status

__all__ = ["STATS", "STATS_PERIOD", "Metrics", "sample"]

STATS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
"""The stats groups one sample asks for."""
STATS_PERIOD = 5
"""Seconds between the guest's balloon statistics, set on a running domain that has none."""
_KIB = 1024
_NO_DRIVER = "the guest's balloon driver does not report this figure"
_DOING = "sampling VM counters"


class Metrics:
    """Samples of the domains' counters, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client
        self._host_cpus: int | None = None
        self._periods: dict[str, _Period] = {}  # uuid -> the balloon period of the boot last seen

    def stats(self, uuids: Sequence[str] | None) -> list[VMStats]:
        """Every domain's counters (or these domains'), in one bulk call (the backend bounds the wait for it by
        :meth:`~polyvisor.backend.Deadline.current`, as every primitive's)."""
        host = self._client.host
        conn = self._client.live()
        with self._client.errors(_DOING, host=host):
            if self._host_cpus is None:
                self._host_cpus = int(conn.getInfo()[2])
            if uuids is None:
                records = conn.getAllDomainStats(STATS, 0)
            else:
                domains = [dom for dom in (self._domain(uuid) for uuid in uuids) if dom is not None]
                records = conn.domainListGetStats(domains, STATS, 0) if domains else []
        at = time.time()
        driver = self._client.uri.driver
        saved: set[str] | None = None  # the managed-save images, listed once the first shut-off domain needs it
        out = []
        for dom, record in records:
            uuid = dom.UUIDString()
            if saved is None and record.get("state.state") == libvirt.VIR_DOMAIN_SHUTOFF:
                with self._client.errors(_DOING, host=host):
                    listed = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)
                saved = {listed_dom.UUIDString() for listed_dom in listed}
            balloon = self._balloon_reason(dom, uuid, record)
            managed_save = saved is not None and uuid in saved
            out.append(sample(uuid, dom.name(), record, at, self._host_cpus, managed_save, driver, balloon))
        return out

    def _domain(self, uuid: str) -> libvirt.virDomain | None:
        try:
            return self._client.domain(uuid)
        except NotFoundError:
            return None  # deleted meanwhile: left out, as the primitive promises

    def _balloon_reason(self, dom: libvirt.virDomain, uuid: str, record: Mapping[str, Any]) -> str | None:
        """Why the record's balloon statistics are missing or stale, or None when they are current."""
        if record.get("state.state") == libvirt.VIR_DOMAIN_SHUTOFF:
            return None  # no process, no counters: sample() says so for every field
        if "balloon.current" not in record:
            return f"libvirt's {self._client.uri.driver} driver reports no balloon for this VM"
        if int(record.get("state.state", 0)) != libvirt.VIR_DOMAIN_RUNNING:
            return None  # paused or crashed: whatever the guest last reported
        boot = dom.ID()  # libvirt gives each start (and restore) of a domain a new ID: a new boot, a new period
        period = self._periods.get(uuid)
        if period is None or period.boot != boot:
            period = self._periods[uuid] = self._ensure_period(dom, boot, record.get("balloon.last-update"))
        if period.failed is not None:
            return period.failed
        update = record.get("balloon.last-update")
        if update is None or (period.stale_update is not None and update == period.stale_update):
            return (
                f"the guest has not reported balloon statistics since polyvisor set a {period.seconds} s period; a "
                "guest without a virtio-balloon driver never reports them"
            )
        return None if "balloon.usable" in record or "balloon.unused" in record else _NO_DRIVER

    def _ensure_period(self, dom: libvirt.virDomain, boot: int, update: Any) -> _Period:
        """Read the running domain's balloon period; set :data:`STATS_PERIOD` where it has none."""
        try:
            stats = ET.fromstring(dom.XMLDesc(0)).find("devices/memballoon/stats")
            seconds = int(stats.get("period", "0")) if stats is not None else 0
            if seconds > 0:
                return _Period(boot, seconds)
            dom.setMemoryStatsPeriod(STATS_PERIOD, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as error:
            return _Period(
                boot,
                0,
                failed=(
                    f"the balloon has no statistics period and setting one failed ({error.get_error_message()}); "
                    f"set one with virsh dommemstat DOMAIN --period {STATS_PERIOD} --live"
                ),
            )
        # What the guest reported before the period (once, when its driver loaded) is a boot-time snapshot.
        return _Period(boot, STATS_PERIOD, stale_update=update)


@dataclass(frozen=True, slots=True)
class _Period:
    """The balloon statistics period of one boot of a domain, as polyvisor found or set it."""

    boot: int
    seconds: int
    stale_update: Any = None
    """The ``balloon.last-update`` from before polyvisor set the period: figures still from then are stale."""
    failed: str | None = None


def sample(
    uuid: str,
    name: str,
    record: Mapping[str, Any],
    at: float,
    host_cpus: int | None,
    managed_save: bool,
    driver: str,
    balloon_reason: str | None = None,
) -> VMStats:
    """Map one ``getAllDomainStats`` record onto :class:`~polyvisor.metrics.VMStats` (host-free).

    ``balloon_reason``, when given, is why the record's balloon statistics are missing or stale: they are left out.
    """
    status = _status(int(record.get("state.state", 0)), int(record.get("state.reason", 0)), managed_save)
    live = status.state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.CRASHED)
    if not live:
        return _idle(uuid, name, status, record, at, host_cpus)
    missing: dict[str, str] = {}
    absent = (
        f"libvirt's {driver} driver did not report it"
        if live
        else f"the VM is {status.state.value}: libvirt has counters only while its process runs"
    )

    def number(key: str, field: str, scale: int = 1, reason: str | None = None) -> int | None:
        value = record.get(key)
        if value is None:
            missing.setdefault(field, reason or absent)
            return None
        return int(value) * scale

    cpus = number("vcpu.current", "cpus")
    vcpu_times: tuple[int | None, ...] | None = None
    if cpus is not None and any(f"vcpu.{index}.time" in record for index in range(cpus)):
        vcpu_times = tuple(
            None if record.get(f"vcpu.{index}.time") is None else int(record[f"vcpu.{index}.time"])
            for index in range(cpus)
        )
    else:
        missing["vcpu_times_ns"] = absent
    if live and balloon_reason is not None:
        missing["memory.unused_bytes"] = missing["memory.usable_bytes"] = balloon_reason
        record = {key: value for key, value in record.items() if key not in ("balloon.unused", "balloon.usable")}
    guest_reason = _NO_DRIVER if live else None
    memory = MemoryCounters(
        current_bytes=number("balloon.current", "memory.current_bytes", _KIB),
        unused_bytes=number("balloon.unused", "memory.unused_bytes", _KIB, guest_reason),
        usable_bytes=number("balloon.usable", "memory.usable_bytes", _KIB, guest_reason),
        rss_bytes=number("balloon.rss", "memory.rss_bytes", _KIB),
    )
    disks = tuple(
        DiskCounters(
            str(record.get(f"block.{index}.name", f"block{index}")),
            read_bytes=_int(record, f"block.{index}.rd.bytes"),
            write_bytes=_int(record, f"block.{index}.wr.bytes"),
            read_requests=_int(record, f"block.{index}.rd.reqs"),
            write_requests=_int(record, f"block.{index}.wr.reqs"),
        )
        for index in range(int(record.get("block.count", 0)))
    )
    nics = tuple(
        NicCounters(
            str(record.get(f"net.{index}.name", f"net{index}")),
            rx_bytes=_int(record, f"net.{index}.rx.bytes"),
            rx_packets=_int(record, f"net.{index}.rx.pkts"),
            rx_errors=_int(record, f"net.{index}.rx.errs"),
            rx_drops=_int(record, f"net.{index}.rx.drop"),
            tx_bytes=_int(record, f"net.{index}.tx.bytes"),
            tx_packets=_int(record, f"net.{index}.tx.pkts"),
            tx_errors=_int(record, f"net.{index}.tx.errs"),
            tx_drops=_int(record, f"net.{index}.tx.drop"),
        )
        for index in range(int(record.get("net.count", 0)))
    )
    if "block.count" not in record:
        missing["disks"] = absent
    if "net.count" not in record:
        missing["nics"] = absent
    return VMStats(
        uuid,
        name,
        status,
        at,
        cpus=cpus,
        host_cpus=host_cpus,
        cpu_time_ns=number("cpu.time", "cpu_time_ns"),
        vcpu_times_ns=vcpu_times,
        memory=memory,
        disks=disks,
        nics=nics,
        missing=missing,
    )


_IDLE_COUNTERS = ("cpu_time_ns", "vcpu_times_ns", "memory.unused_bytes", "memory.usable_bytes", "memory.rss_bytes")
_idle_missing: dict[tuple[PowerState, bool, bool], Mapping[str, str]] = {}


def _idle(
    uuid: str, name: str, status: VMStatus, record: Mapping[str, Any], at: float, host_cpus: int | None
) -> VMStats:
    """A domain with no QEMU process: its size, and no counters. libvirt may still report a ``cpu.time`` for an
    inactive domain (read from a cgroup that is not the domain's), which says nothing about it and is left out."""
    cpus, current = record.get("vcpu.current"), record.get("balloon.current")
    key = (status.state, cpus is None, current is None)
    missing = _idle_missing.get(key)
    if missing is None:
        why = f"the VM is {status.state.value}: libvirt has counters only while its process runs"
        names = [*_IDLE_COUNTERS, "disks", "nics"]
        names += ["cpus"] if cpus is None else []
        names += ["memory.current_bytes"] if current is None else []
        missing = _idle_missing[key] = MappingProxyType(dict.fromkeys(names, why))
    memory = _NO_MEMORY if current is None else _size(int(current) * _KIB)
    return VMStats(
        uuid,
        name,
        status,
        at,
        cpus=None if cpus is None else int(cpus),
        host_cpus=host_cpus,
        memory=memory,
        missing=missing,
    )


_NO_MEMORY = MemoryCounters()
# A sample of a thousand VMs holds a handful of distinct statuses and memory sizes: both are frozen values, made once.
_CACHED = 256
_statuses: dict[tuple[int, int, bool], VMStatus] = {}
_sizes: dict[int, MemoryCounters] = {}


def _status(state: int, reason: int, managed_save: bool) -> VMStatus:
    key = (state, reason, managed_save)
    status = _statuses.get(key)
    if status is None:
        status = to_status(state, reason, managed_save=managed_save)
        if len(_statuses) < _CACHED:
            _statuses[key] = status
    return status


def _size(current_bytes: int) -> MemoryCounters:
    """The memory counters of a VM with no process: its size alone."""
    memory = _sizes.get(current_bytes)
    if memory is None:
        memory = MemoryCounters(current_bytes=current_bytes)
        if len(_sizes) < _CACHED:
            _sizes[current_bytes] = memory
    return memory


def _int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return None if value is None else int(value)
