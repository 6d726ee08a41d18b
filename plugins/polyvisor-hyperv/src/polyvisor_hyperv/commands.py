"""A request to the host: a short list of cmdlet invocations, or fixed scripts, with typed parameters.

Values travel as PSRP typed parameters or as JSON on the WinRM shell's stdin; neither path splices a value into
PowerShell source, so names such as ``$(Remove-VM *)`` stay names.

A :class:`Script` is for what no cmdlet does with plain parameters (reading a byte range of a file, a WMI method
that takes a CIM reference): one of the backend's own files ``scripts/<name>.ps1``, constant text that starts with
a ``param()`` block, run with its parameters bound to values (PSRP: ``AddScript`` then ``AddParameter``; the WinRM
shell: the runner makes it a script block and splats the values into it). No value ever becomes part of its text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType

__all__ = [
    "HYPERV_MODULE",
    "SWITCH",
    "Request",
    "Script",
    "Step",
    "Switch",
    "Value",
    "qualified_name",
    "script_names",
    "script_text",
]


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


_RUNNER_SCRIPTS = frozenset({"invoke", "watch"})  # the WinRM runner and the event watcher run in their own ways


@cache
def script_names() -> frozenset[str]:
    """The fixed scripts a :class:`Script` may name: the ``scripts/*.ps1`` files of this package."""
    folder = resources.files("polyvisor_hyperv").joinpath("scripts")
    names = {entry.name.removesuffix(".ps1") for entry in folder.iterdir() if entry.name.endswith(".ps1")}
    return frozenset(names - _RUNNER_SCRIPTS)


@cache
def script_text(name: str) -> str:
    """The text of the fixed script ``scripts/<name>.ps1``, comment lines left out (they only lengthen a request)."""
    if name not in script_names():
        raise ValueError(f"no fixed script named {name!r}")
    text = resources.files("polyvisor_hyperv").joinpath(f"scripts/{name}.ps1").read_text(encoding="utf-8")
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


@dataclass(frozen=True, slots=True)
class Script:
    """One run of the fixed script ``scripts/<name>.ps1``, its ``param()`` block bound to ``parameters``.

    The name can only be one of :func:`script_names`, so the text sent is always the package's own; values go only
    into ``parameters``, as a cmdlet's do. The script sets ``$ErrorActionPreference`` itself.
    """

    name: str
    parameters: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in script_names():
            raise ValueError(f"no fixed script named {self.name!r}; the scripts are {sorted(script_names())}")
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    @property
    def text(self) -> str:
        """The script's constant text."""
        return script_text(self.name)

    @property
    def pipe(self) -> bool:
        """A script starts a statement of its own: it never receives the previous step's output."""
        return False


@dataclass(frozen=True, slots=True)
class Request:
    """Steps run in order; statements that do not pipe start afresh. Only the last statement's output is returned.

    ``select`` keeps only these properties of each output object (Select-Object), so replies stay small.
    """

    steps: tuple[Step | Script, ...]
    select: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].pipe:
            raise ValueError("a request starts with a step that does not pipe")
