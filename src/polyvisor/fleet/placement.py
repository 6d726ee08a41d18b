"""Where a new VM goes: :class:`Placement` constraints, each host's :class:`Candidate` facts, :func:`choose_host`.

Pure functions over plain values, shared by the thread-pool and asyncio fleets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from polyvisor.errors import PlacementError, PolyvisorError, TimeoutError, ValidationError
from polyvisor.model import HostInfo, VMInfo, validate_labels

__all__ = ["Candidate", "Placement", "PlacementError", "choose_host", "free_memory_mib"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Constraints on the host of a new VM: all given must hold.

    ``labels``: the host's labels (``labels = {...}`` of its config entry) must include these. ``hosts``: only
    these hosts. ``min_free_memory_mib``: the host must have at least this much free memory, even when the VM
    needs less (the VM's own memory is always required).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    hosts: Sequence[str] | None = None
    min_free_memory_mib: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(validate_labels(self.labels, "placement.labels"))))
        if self.hosts is not None:
            if isinstance(self.hosts, str):
                raise ValidationError("give a list of host names", field="placement.hosts")
            object.__setattr__(self, "hosts", tuple(self.hosts))
        limit = self.min_free_memory_mib
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValidationError(f"must be a number of MiB >= 0, got {limit!r}", field="placement.min_free_memory_mib")


@dataclass(frozen=True, slots=True)
class Candidate:
    """What placement knows of one host: its facts, or the error that kept it from answering."""

    host: str
    labels: Mapping[str, str] = field(default_factory=dict)
    free_memory_mib: int | None = None
    cpus: int | None = None
    error: PolyvisorError | None = None


def free_memory_mib(host: HostInfo, vms: Iterable[VMInfo] | None) -> int | None:
    """Return the host's free memory: as it reports it, else its memory less that of VMs holding some.

    ``vms`` must be listed with details; None (not listed) leaves a host that reports nothing unknown.
    """
    if host.free_memory_mib is not None:
        return host.free_memory_mib
    if vms is None:
        return None
    used = sum(vm.memory_mib for vm in vms if vm.state.holds_memory)
    return max(host.memory_mib - used, 0)


def _reason(candidate: Candidate, placement: Placement, memory_mib: int, cpus: int) -> str | None:
    """Return why the host cannot take the VM, or None when it can."""
    if placement.hosts is not None and candidate.host not in placement.hosts:
        return "not among the placement's hosts"
    if candidate.error is not None:
        if isinstance(candidate.error, TimeoutError):
            return "timed out"
        return "unreachable: " + " ".join(str(candidate.error).split())
    missing = {key: value for key, value in placement.labels.items() if candidate.labels.get(key) != value}
    if missing:
        wanted = ", ".join(f"{key}={value}" for key, value in missing.items())
        return f"lacks label {wanted}"
    if candidate.cpus is not None and candidate.cpus < cpus:
        return f"{candidate.cpus} CPUs, {cpus} needed"
    needed = max(memory_mib, placement.min_free_memory_mib or 0)
    if candidate.free_memory_mib is None:
        return "free memory unknown"
    if candidate.free_memory_mib < needed:
        return f"{candidate.free_memory_mib} MiB free, {needed} needed"
    return None


def choose_host(
    candidates: Iterable[Candidate], *, memory_mib: int, cpus: int = 1, placement: Placement | None = None
) -> str | PlacementError:
    """Return the fitting host with the most free memory (ties: the first given), or the error saying why none fits.

    The :class:`~polyvisor.errors.PlacementError` is returned, not raised, so callers can add to it or raise it.
    """
    placement = placement or Placement()
    best: Candidate | None = None
    reasons: dict[str, str] = {}
    listed = list(candidates)
    for candidate in listed:
        reason = _reason(candidate, placement, memory_mib, cpus)
        if reason is not None:
            reasons[candidate.host] = reason
        elif best is None or (candidate.free_memory_mib or 0) > (best.free_memory_mib or 0):
            best = candidate
    if best is not None:
        return best.host
    if not listed:
        return PlacementError("the fleet has no hosts to place the VM on", reasons={})
    detail = "; ".join(f"{host}: {reason}" for host, reason in reasons.items())
    return PlacementError(f"no host fits a VM of {memory_mib} MiB and {cpus} CPUs: {detail}", reasons=reasons)
