"""libvirt domain states and reasons mapped onto the contract's power states."""

from __future__ import annotations

import libvirt

from polyvisor.model import PowerState, VMStatus

__all__ = ["reason_name", "state_name", "to_status"]

P = PowerState

_STATE_PREFIX = "VIR_DOMAIN_"
_STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "VIR_DOMAIN_NOSTATE",
    libvirt.VIR_DOMAIN_RUNNING: "VIR_DOMAIN_RUNNING",
    libvirt.VIR_DOMAIN_BLOCKED: "VIR_DOMAIN_BLOCKED",
    libvirt.VIR_DOMAIN_PAUSED: "VIR_DOMAIN_PAUSED",
    libvirt.VIR_DOMAIN_SHUTDOWN: "VIR_DOMAIN_SHUTDOWN",
    libvirt.VIR_DOMAIN_SHUTOFF: "VIR_DOMAIN_SHUTOFF",
    libvirt.VIR_DOMAIN_CRASHED: "VIR_DOMAIN_CRASHED",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "VIR_DOMAIN_PMSUSPENDED",
}

# Reason constants per state, e.g. VIR_DOMAIN_PAUSED_IOERROR -> "ioerror" for state PAUSED.
_REASON_PREFIXES = {
    libvirt.VIR_DOMAIN_NOSTATE: "VIR_DOMAIN_NOSTATE_",
    libvirt.VIR_DOMAIN_RUNNING: "VIR_DOMAIN_RUNNING_",
    libvirt.VIR_DOMAIN_BLOCKED: "VIR_DOMAIN_BLOCKED_",
    libvirt.VIR_DOMAIN_PAUSED: "VIR_DOMAIN_PAUSED_",
    libvirt.VIR_DOMAIN_SHUTDOWN: "VIR_DOMAIN_SHUTDOWN_",
    libvirt.VIR_DOMAIN_SHUTOFF: "VIR_DOMAIN_SHUTOFF_",
    libvirt.VIR_DOMAIN_CRASHED: "VIR_DOMAIN_CRASHED_",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "VIR_DOMAIN_PMSUSPENDED_",
}


def _reason_table(prefix: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for name, value in vars(libvirt).items():
        if name.startswith(prefix) and isinstance(value, int) and not name.endswith("_LAST"):
            table.setdefault(value, name[len(prefix) :].lower())
    return table


_REASONS = {state: _reason_table(prefix) for state, prefix in _REASON_PREFIXES.items()}

# PAUSED reasons that mean "on the way somewhere": the contract's transitional states.
_PAUSED_TRANSITIONS = {
    libvirt.VIR_DOMAIN_PAUSED_STARTING_UP: P.STARTING,
    libvirt.VIR_DOMAIN_PAUSED_SAVE: P.SAVING,
    libvirt.VIR_DOMAIN_PAUSED_SNAPSHOT: P.SAVING,
    libvirt.VIR_DOMAIN_PAUSED_DUMP: P.SAVING,
    libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN: P.STOPPING,
    libvirt.VIR_DOMAIN_PAUSED_MIGRATION: P.PAUSED,
}
# Pauses the guest did not ask for and an operator must look at.
_CRITICAL_PAUSES = frozenset(
    {
        libvirt.VIR_DOMAIN_PAUSED_IOERROR,
        libvirt.VIR_DOMAIN_PAUSED_WATCHDOG,
        libvirt.VIR_DOMAIN_PAUSED_CRASHED,
        libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED,
    }
)
_SIMPLE = {
    libvirt.VIR_DOMAIN_RUNNING: P.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: P.RUNNING,
    libvirt.VIR_DOMAIN_SHUTDOWN: P.STOPPING,
    libvirt.VIR_DOMAIN_PMSUSPENDED: P.SUSPENDED,
    libvirt.VIR_DOMAIN_CRASHED: P.CRASHED,
}


def state_name(state: int) -> str:
    """Return the ``VIR_DOMAIN_*`` name of a domain state."""
    return _STATE_NAMES.get(state, f"{_STATE_PREFIX}{state}")


def reason_name(state: int, reason: int) -> str:
    """Return the lower-case name of a state reason (``"user"``, ``"ioerror"``, ...)."""
    return _REASONS.get(state, {}).get(reason, str(reason))


def to_status(state: int, reason: int, *, managed_save: bool) -> VMStatus:
    """Map a libvirt state, its reason and whether a managed-save image exists onto a :class:`VMStatus`."""
    raw = state_name(state)
    why = reason_name(state, reason)
    critical = False
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        mapped = P.SAVED if managed_save else P.STOPPED
    elif state == libvirt.VIR_DOMAIN_PAUSED:
        mapped = _PAUSED_TRANSITIONS.get(reason, P.PAUSED)
        critical = reason in _CRITICAL_PAUSES
    elif state == libvirt.VIR_DOMAIN_CRASHED:
        mapped, critical = P.CRASHED, True
    else:
        # NOSTATE and anything a newer libvirt adds: never guess RUNNING.
        mapped = _SIMPLE.get(state, P.UNKNOWN)
    return VMStatus(mapped, raw, why, critical)
