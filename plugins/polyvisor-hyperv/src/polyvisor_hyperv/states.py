"""Hyper-V ``VMState`` to the contract's power states, by name.

Both transports deliver enums by name: PSRP serializes them with their names, and the WinRM shell's invoke.ps1
turns enum properties into names before ConvertTo-Json (which in Windows PowerShell 5.1 would write numbers). No
number table is kept here: VMState's numbering is sourced for one Windows build only, and members were added over
releases (Hibernated, ComponentServicing), so a number is never trusted to mean a state.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from polyvisor.model import PowerState, VMStatus

__all__ = ["enum_name", "to_status"]

P = PowerState

_BASE_STATES = MappingProxyType(
    {
        "Running": P.RUNNING,
        "Off": P.STOPPED,
        "Saved": P.SAVED,
        "FastSaved": P.SAVED,
        "Paused": P.PAUSED,
        "Starting": P.STARTING,
        "Reset": P.STARTING,
        # A forced reboot is a reset the host initiated: the guest is on its way back to running.
        "ForceReboot": P.STARTING,
        "Stopping": P.STOPPING,
        "ForceShutdown": P.STOPPING,
        "Saving": P.SAVING,
        "FastSaving": P.SAVING,
        "Pausing": P.PAUSING,
        "Resuming": P.RESUMING,
    }
)


def enum_name(value: object, names: Mapping[int, str] | None = None) -> str:
    """Return an enum value's name as text; ``names`` may translate numbers for enums outside Hyper-V's releases."""
    if isinstance(value, bool):
        return str(value)
    if names is not None and isinstance(value, int):
        return names.get(value, str(value))
    return "" if value is None else str(value).strip()


def to_status(value: object) -> VMStatus:
    """Map a VMState name onto the contract: ``XCritical`` is X with the critical flag.

    A Critical state whose base is not a known state (there are none today) is CRASHED; anything else unknown
    (Other, Hibernated, ComponentServicing, new values, a number) is UNKNOWN, never silently RUNNING.
    """
    name = enum_name(value)
    if name in _BASE_STATES:
        return VMStatus(_BASE_STATES[name], name)
    if name.endswith("Critical"):
        base = _BASE_STATES.get(name.removesuffix("Critical"))
        return VMStatus(base or P.CRASHED, name, reason="critical: the VM's storage is unreachable", critical=True)
    return VMStatus(P.UNKNOWN, name)
