"""Sampling a VM's counters as steps (no I/O), for both faces."""

from __future__ import annotations

from polyvisor.backend import Deadline, validate_timeout
from polyvisor.errors import NotFoundError
from polyvisor.metrics.counters import VMStats
from polyvisor.model import Feature
from polyvisor.verbs.engine import require
from polyvisor.verbs.ops import Handle, Query, Steps

__all__ = ["vm_stats"]


def vm_stats(vm: Handle, timeout: float) -> Steps[VMStats]:
    """Return one sample of the VM's counters within ``timeout`` (the capability probe included); NotFoundError if
    the VM is gone."""
    validate_timeout(timeout)
    deadline = Deadline(timeout, vm.connection.clock)
    yield from require(vm, Feature.STATS, deadline)
    uuid = vm.uuid
    found: list[VMStats] = yield Query(lambda b: b.stats([uuid]), deadline)
    for sample in found:
        if sample.uuid == uuid:
            return sample
    raise NotFoundError(
        f"the VM {vm.seen_name!r} no longer exists; list the VMs to see what does",
        host=vm.connection.host,
        vm=vm.seen_name,
    )
