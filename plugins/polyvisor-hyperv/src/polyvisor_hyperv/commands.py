"""A request to the host: a short list of cmdlet invocations with typed parameters, never script text.

Values travel as PSRP typed parameters or as JSON on the WinRM shell's stdin; neither path splices a value into
PowerShell source, so names such as ``$(Remove-VM *)`` stay names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["HYPERV_MODULE", "SWITCH", "Request", "Step", "Switch", "Value", "qualified_name"]


HYPERV_MODULE = "Hyper-V"
_HYPERV_NOUNS = ("vm", "vhd", "vfd")


def qualified_name(command: str) -> str:
    """``Hyper-V\\Get-VM`` for a Hyper-V cmdlet, the name unchanged for any other command.

    VMware PowerCLI exports Get-VM, New-VM, Start-VM, Get-VMHost ... under the same names, and the module imported
    last wins a bare name (about_Command_Precedence); the module-qualified name always runs Hyper-V's. Every
    cmdlet of the Hyper-V module has a noun starting with VM, VHD or VFD (Microsoft's Hyper-V cmdlet reference);
    other commands (Remove-Item, Select-Object) are left to ordinary resolution.
    """
    _verb, dash, noun = command.partition("-")
    if "\\" in command or not dash or not noun.casefold().startswith(_HYPERV_NOUNS):
        return command
    return f"{HYPERV_MODULE}\\{command}"


class Switch:
    """The value of a switch parameter that is present (``-Force``)."""

    _instance: Switch | None = None

    def __new__(cls) -> Switch:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SWITCH"


SWITCH = Switch()

Value = Switch | str | int | bool | bytes | None | Sequence[str]
"""A parameter value: SWITCH, a scalar, bytes (a byte[]) or a list; None leaves the parameter out."""


@dataclass(frozen=True, slots=True)
class Step:
    """One cmdlet call; with ``pipe`` it receives the previous step's output on its pipeline."""

    command: str
    parameters: Mapping[str, Value] = field(default_factory=dict)
    pipe: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))


@dataclass(frozen=True, slots=True)
class Request:
    """Steps run in order; statements that do not pipe start afresh. Only the last statement's output is returned.

    ``select`` keeps only these properties of each output object (Select-Object), so replies stay small.
    """

    steps: tuple[Step, ...]
    select: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].pipe:
            raise ValueError("a request starts with a step that does not pipe")
