"""Hyper-V ``VMState`` to the contract's power states, by name.

PSRP delivers enums by name; Windows PowerShell 5.1's ConvertTo-Json (the WinRM shell path) delivers numbers,
which :data:`VMSTATE_NAMES` turns back into names first. The numbers are those of current Windows releases;
older ones numbered the Critical states differently, which is why the mapping itself works on names only.
"""

from __future__ import annotations

from types import MappingProxyType

from polyvisor.model import PowerState, VMStatus

__all__ = ["CHECKPOINT_TYPE_NAMES", "VMSTATE_NAMES", "enum_name", "status_from_vmstate"]

P = PowerState

VMSTATE_NAMES = MappingProxyType(
    {
        1: "Other",
        2: "Running",
        3: "Off",
        4: "Stopping",
        6: "Saved",
        9: "Paused",
        10: "Starting",
        11: "Reset",
        32773: "Saving",
        32776: "Pausing",
        32777: "Resuming",
        32779: "FastSaved",
        32780: "FastSaving",
        32781: "ForceShutdown",
        32782: "ForceReboot",
        32783: "Hibernated",
        32784: "ComponentServicing",
        32785: "RunningCritical",
        32786: "OffCritical",
        32787: "StoppingCritical",
        32788: "SavedCritical",
        32789: "PausedCritical",
        32790: "StartingCritical",
        32791: "ResetCritical",
        32792: "SavingCritical",
        32793: "PausingCritical",
        32794: "ResumingCritical",
        32795: "FastSavedCritical",
        32796: "FastSavingCritical",
    }
)
"""Every Microsoft.HyperV.PowerShell.VMState value by number."""

CHECKPOINT_TYPE_NAMES = MappingProxyType({2: "Disabled", 3: "Production", 4: "ProductionOnly", 5: "Standard"})
"""Microsoft.HyperV.PowerShell.CheckpointType by number."""

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


def enum_name(value: object, names: MappingProxyType[int, str]) -> str:
    """Return an enum value's name whether it arrived as a name, a number or a numeric string."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return names.get(value, str(value))
    text = str(value).strip()
    if text.isdigit():
        return names.get(int(text), text)
    return text


def status_from_vmstate(value: object) -> VMStatus:
    """Map a VMState (name or number) onto the contract: ``XCritical`` is X with the critical flag.

    A Critical state whose base is not a known state (there are none today) is CRASHED; anything else unknown
    (Other, Hibernated, ComponentServicing, new values) is UNKNOWN, never silently RUNNING.
    """
    name = enum_name(value, VMSTATE_NAMES)
    if name in _BASE_STATES:
        return VMStatus(_BASE_STATES[name], name)
    if name.endswith("Critical"):
        base = _BASE_STATES.get(name.removesuffix("Critical"))
        return VMStatus(base or P.CRASHED, name, reason="critical: the VM's storage is unreachable", critical=True)
    return VMStatus(P.UNKNOWN, name)
