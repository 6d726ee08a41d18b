"""The counters of ``memory://`` guests: a steady, known load while they run, so tests can predict every rate.

A guest's counters start at zero when it boots (``start`` from stopped, ``reset``, a reboot it obeys) and grow
only while it runs, on the host's clock (:attr:`~polyvisor.testing.memory.MemoryHost.clock`): each vCPU runs the
guest :data:`VCPU_LOAD` of the time and the VM's CPU time is theirs plus :data:`OVERHEAD`; each disk reads
:data:`DISK_READ_RATE` and writes :data:`DISK_WRITE_RATE` bytes per second in 4 KiB requests; each NIC receives
:data:`RX_RATE` and sends :data:`TX_RATE` bytes per second in 1000-byte packets, without errors or drops. A paused
guest's counters stand still. A stopped or saved VM has no counters (its process is gone), as on libvirt: those
fields are None with the reason in ``missing``. The balloon reports the guest's memory statistics: a guest leaves
:data:`UNUSED_SHARE` of its memory unused and could use :data:`USABLE_SHARE`; the host holds half resident.
``sampled_at`` is the host's clock moved onto the wall clock, so a test that drives the clock drives the rates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from polyvisor.metrics.counters import DiskCounters, MemoryCounters, NicCounters, VMStats
from polyvisor.model import PowerState, VMStatus

if TYPE_CHECKING:
    from polyvisor.testing.memory import _VM, MemoryHost

__all__ = [
    "DISK_READ_RATE",
    "DISK_WRITE_RATE",
    "OVERHEAD",
    "RX_RATE",
    "TX_RATE",
    "UNUSED_SHARE",
    "USABLE_SHARE",
    "VCPU_LOAD",
    "note_state",
    "sample",
    "sample_host",
]

VCPU_LOAD = 0.25
"""Share of the time each vCPU runs the guest."""
OVERHEAD = 0.05
"""CPU time the hypervisor spends for the VM, as a share of one CPU."""
DISK_READ_RATE = 1024 * 1024
"""Bytes per second each disk reads."""
DISK_WRITE_RATE = 256 * 1024
"""Bytes per second each disk writes."""
RX_RATE = 20_000
"""Bytes per second each NIC receives."""
TX_RATE = 10_000
"""Bytes per second each NIC sends."""
UNUSED_SHARE = 0.4
"""Share of its memory the guest leaves unused."""
USABLE_SHARE = 0.6
"""Share of its memory the guest could use without swapping."""
_NS = 1_000_000_000
_MIB = 1024 * 1024
_EPOCH = time.time() - time.monotonic()  # the host's default clock is time.monotonic
_LIVE = (PowerState.RUNNING, PowerState.PAUSED, PowerState.CRASHED)


def note_state(vm: _VM, state: PowerState, now: float) -> None:
    """Count the guest's running time up to ``now``, when it moves into ``state`` (the host's lock held)."""
    if vm.running_since is not None and state is not PowerState.RUNNING:
        vm.ran_before += now - vm.running_since
        vm.running_since = None
    elif vm.running_since is None and state is PowerState.RUNNING:
        vm.running_since = now


def sample_host(host: MemoryHost, uuids: Sequence[str] | None, host_cpus: int) -> list[VMStats]:
    """Return the counters of these VMs of ``host`` (None: every VM; one that is gone is left out), all at once."""
    with host.lock:
        now = host.clock()
        chosen = host.vms.values() if uuids is None else [host.vms[u] for u in uuids if u in host.vms]
        return [sample(vm, vm.info(details=False).status, now, host_cpus) for vm in chosen]


def sample(vm: _VM, status: VMStatus, now: float, host_cpus: int) -> VMStats:
    """Return the counters of ``vm`` at ``now`` on the host's clock."""
    at = _EPOCH + now
    if vm.state not in _LIVE:
        reason = f"the VM is {vm.state.value}: counters exist only while its guest runs"
        return VMStats(
            vm.uuid,
            vm.name,
            status,
            at,
            cpus=vm.cpus,
            host_cpus=host_cpus,
            memory=MemoryCounters(),
            missing=dict.fromkeys(("cpu_time_ns", "vcpu_times_ns", "memory", "disks", "nics"), reason),
        )
    ran = vm.ran_before + (now - vm.running_since if vm.running_since is not None else 0.0)
    vcpu = int(ran * VCPU_LOAD * _NS)
    memory = vm.memory_mib * _MIB
    disks = tuple(
        DiskCounters(
            target,
            read_bytes=int(ran * DISK_READ_RATE),
            write_bytes=int(ran * DISK_WRITE_RATE),
            read_requests=int(ran * DISK_READ_RATE) // 4096,
            write_requests=int(ran * DISK_WRITE_RATE) // 4096,
        )
        for target in sorted(vm.disks)
    )
    nics = tuple(
        NicCounters(
            f"vnet{index}",
            mac,
            rx_bytes=int(ran * RX_RATE),
            rx_packets=int(ran * RX_RATE) // 1000,
            rx_errors=0,
            rx_drops=0,
            tx_bytes=int(ran * TX_RATE),
            tx_packets=int(ran * TX_RATE) // 1000,
            tx_errors=0,
            tx_drops=0,
        )
        for index, mac in enumerate(vm.nics)
    )
    return VMStats(
        vm.uuid,
        vm.name,
        status,
        at,
        cpus=vm.cpus,
        host_cpus=host_cpus,
        cpu_time_ns=vcpu * vm.cpus + int(ran * OVERHEAD * _NS),
        vcpu_times_ns=(vcpu,) * vm.cpus,
        memory=MemoryCounters(
            current_bytes=memory,
            unused_bytes=int(memory * UNUSED_SHARE),
            usable_bytes=int(memory * USABLE_SHARE),
            rss_bytes=memory // 2,
        ),
        disks=disks,
        nics=nics,
    )
