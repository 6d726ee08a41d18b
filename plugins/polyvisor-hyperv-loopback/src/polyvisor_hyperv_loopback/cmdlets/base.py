"""Cmdlet definitions, parameter binding and the per-invocation context (error/warning streams, preferences).

Binding follows PowerShell: names are case-insensitive and may be any unambiguous prefix or alias; positional
arguments fill parameters by position; pipeline input binds by value to the parameter that takes it, one
process-record call per input object; common parameters (-ErrorAction, -WarningAction, -Confirm, -WhatIf,
-Verbose, -Debug) are understood by every cmdlet. Binding failures are terminating ParameterBindingExceptions.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import HostError, PipelineStopped, PSErrorRecord
from polyvisor_hyperv_loopback.powershell.values import PSHashtable, is_truthy, to_ps_string

__all__ = ["Cmdlet", "CommandContext", "Param", "Registry", "Session"]

COMMON = {
    "erroraction": "ErrorAction",
    "ea": "ErrorAction",
    "warningaction": "WarningAction",
    "wa": "WarningAction",
    "confirm": "Confirm",
    "cf": "Confirm",
    "whatif": "WhatIf",
    "wi": "WhatIf",
    "verbose": "Verbose",
    "vb": "Verbose",
    "debug": "Debug",
    "db": "Debug",
}
ACTIONS = {"stop", "continue", "silentlycontinue", "ignore"}
BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"


@dataclass(frozen=True)
class Param:
    """One cmdlet parameter. ``kind``: str, str[], int, bool, switch, guid, object, object[], or choice.

    ``pipeline`` binds pipeline input by value (only objects whose first type name is ``pipeline_type``, when
    given); ``by_property`` binds the input object's property of the same name (or an alias), as
    ValueFromPipelineByPropertyName does.
    """

    name: str
    kind: str = "str"
    aliases: tuple[str, ...] = ()
    position: int | None = None
    pipeline: bool = False
    choices: tuple[str, ...] = ()
    pipeline_type: str | None = None
    by_property: bool = False


@dataclass
class Session:
    """What lives across the commands of one pipeline or script: the host, preferences and the streams."""

    host: HyperVHost
    cancel: threading.Event | None = None
    error_preference: str = "Continue"
    warning_preference: str = "Continue"
    errors: list[PSErrorRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def check_stopped(self) -> None:
        """Raise the PipelineStoppedException record if the client stopped the pipeline."""
        if self.cancel is not None and self.cancel.is_set():
            raise PipelineStopped(STOPPED)

    def read_file(self, path: str, offset: int, count: int) -> tuple[bytes, int]:
        """A byte range of a file of the host and its length, as a FileStream reads them."""
        return self.host.files.read(path, offset, count)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the client stops the pipeline (then raise as :meth:`check_stopped`)."""
        if self.cancel is None:
            threading.Event().wait(seconds)
        elif self.cancel.wait(seconds):
            raise PipelineStopped(STOPPED)


STOPPED = PSErrorRecord(
    message="The pipeline has been stopped.",
    category="OperationStopped",
    fully_qualified_error_id="PipelineStopped",
    exception_type="System.Management.Automation.PipelineStoppedException",
)
"""What a stopped pipeline reports (as Stop-VM blocked on a guest reports it in :mod:`.hyperv`)."""


@dataclass
class CommandContext:
    """One cmdlet invocation: its output, its error action and a way back to the session."""

    session: Session
    cmdlet: Cmdlet
    error_action: str
    warning_action: str
    confirm: bool | None
    what_if: bool
    output: list[object] = field(default_factory=list)

    @property
    def host(self) -> HyperVHost:
        """The Hyper-V host."""
        return self.session.host

    def write(self, value: object) -> None:
        """Write one object to the output stream."""
        self.output.append(value)

    def write_error(self, error: HostError | PSErrorRecord) -> None:
        """Write a non-terminating error; under -ErrorAction Stop it terminates the pipeline."""
        record = error if isinstance(error, PSErrorRecord) else self.record(error)
        action = self.error_action.casefold()
        if action == "stop":
            raise PipelineStopped(record)
        if action in {"silentlycontinue", "ignore"}:
            return
        self.session.errors.append(record)

    def record(self, error: HostError) -> PSErrorRecord:
        """Return the record this cmdlet writes for ``error``."""
        return error.record(self.cmdlet.command_class, self.cmdlet.name)

    def fail(self, error: HostError) -> None:
        """Throw a terminating error."""
        raise PipelineStopped(self.record(error))

    def warn(self, message: str) -> None:
        """Write a warning (dropped under -WarningAction SilentlyContinue)."""
        if self.warning_action.casefold() in {"silentlycontinue", "ignore"}:
            return
        self.session.warnings.append(message)

    def should_continue(self, force: bool) -> bool:
        """ShouldContinue as Hyper-V's cmdlets call it: yes with -Force, otherwise a prompt, which a
        non-interactive session cannot show. -Confirm:$false does not answer it (NEON
        Commands/VirtualizationCmdletBase.cs IOperationWatcher.ShouldContinue)."""
        if not force:
            self.fail(
                HostError(
                    "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.",
                    error_id="System.Management.Automation.PSInvalidOperationException",
                    category="InvalidOperation",
                    exception_type="System.Management.Automation.PSInvalidOperationException",
                )
            )
        return True

    def should_process(self, high_impact: bool, force: bool = False) -> bool:
        """Return whether to act: -WhatIf skips; a high-impact action needs -Force or -Confirm:$false."""
        if self.what_if:
            return False
        if high_impact and not force and self.confirm is not False:
            self.fail(
                HostError(
                    "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.",
                    error_id="System.Management.Automation.PSInvalidOperationException",
                    category="InvalidOperation",
                    exception_type="System.Management.Automation.PSInvalidOperationException",
                )
            )
        return True


Body = Callable[[CommandContext, dict[str, object]], None]


# Hyper-V and VHD cmdlets (WMI calls on a real host) take the host's cmdlet latency; utilities take none.
_HYPERV_CLASSES = ("Microsoft.HyperV.", "Microsoft.Vhd.")


@dataclass(frozen=True)
class Cmdlet:
    """A cmdlet: its name, .NET class (for FullyQualifiedErrorId), parameters and process-record body."""

    name: str
    command_class: str
    params: tuple[Param, ...]
    body: Body
    aliases: tuple[str, ...] = ()
    collect_input: bool = False  # an end-block cmdlet: the body sees all input at once as "__pipeline__"
    module: str = ""  # the module exporting it; empty: derived from command_class (see module_of)

    def _binding_error(self, message: str, error_id: str, target: str = "") -> PipelineStopped:
        return PipelineStopped(
            PSErrorRecord(
                message=message,
                category="InvalidArgument",
                fully_qualified_error_id=f"{error_id},{self.command_class}",
                exception_type=BINDING_EXCEPTION,
                target_name=target,
                activity=self.name,
            )
        )

    def _lookup(self, name: str) -> Param | str:
        low = name.casefold()
        if low in COMMON:
            return COMMON[low]
        exact = [p for p in self.params if p.name.casefold() == low or low in (a.casefold() for a in p.aliases)]
        if exact:
            return exact[0]
        matches = [p for p in self.params if p.name.casefold().startswith(low)]
        common = {v for k, v in COMMON.items() if v.casefold().startswith(low)}
        if len(matches) == 1 and not common:
            return matches[0]
        if not matches and len(common) == 1:
            return common.pop()
        if len(matches) + len(common) > 1:
            names = ", ".join(sorted([p.name for p in matches] + list(common)))
            raise self._binding_error(
                f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
                f"Possible matches include: {names}.",
                "AmbiguousParameter",
                name,
            )
        raise self._binding_error(
            f"A parameter cannot be found that matches parameter name '{name}'.", "NamedParameterNotFound", name
        )

    def convert(self, param: Param, value: object) -> object:
        """Convert an argument to the parameter's type, as the binder does."""
        try:
            return _convert(param, value)
        except (ValueError, TypeError) as exc:
            shown = to_ps_string(value)
            raise self._binding_error(
                f"Cannot bind parameter '{param.name}'. Cannot convert value \"{shown}\" to type "
                f'"{_dotnet(param.kind)}". Error: "{exc}"',
                "CannotConvertArgumentNoMessage",
                param.name,
            ) from None

    def run(
        self,
        session: Session,
        arguments: Sequence[tuple[str | None, object]],
        pipeline_input: Sequence[object] | None,
    ) -> list[object]:
        """Bind ``arguments``, then run the body once, or once per pipeline object when there is input."""
        if self.command_class.startswith(_HYPERV_CLASSES):
            session.host.cmdlet_pause(session.cancel)
            if session.cancel is not None and session.cancel.is_set():
                stopped = HostError(
                    "The pipeline has been stopped.",
                    error_id="PipelineStopped",
                    category="OperationStopped",
                    exception_type="System.Management.Automation.PipelineStoppedException",
                )
                raise PipelineStopped(stopped.record(self.command_class, self.name))
        bound: dict[str, object] = {}
        common: dict[str, object] = {}
        positional: list[object] = []
        for name, value in arguments:
            if name is None:
                positional.append(value)
                continue
            target = self._lookup(name)
            target_name = target if isinstance(target, str) else target.name
            if target_name in bound or target_name in common:
                raise self._binding_error(
                    f"Cannot bind parameter because parameter '{target_name}' is specified more than once. To "
                    "provide multiple values to parameters that can accept multiple values, use the array syntax.",
                    "ParameterAlreadyBound",
                    target_name,
                )
            if isinstance(target, str):
                common[target] = True if value is None else value
                continue
            if value is None and target.kind == "switch":
                value = True
            bound[target.name] = self.convert(target, value)
        slots = sorted((p for p in self.params if p.position is not None), key=lambda p: p.position or 0)
        slots = [p for p in slots if p.name not in bound]
        for value in positional:
            if not slots:
                raise self._binding_error(
                    f"A positional parameter cannot be found that accepts argument '{to_ps_string(value)}'.",
                    "PositionalParameterNotFound",
                    to_ps_string(value),
                )
            param = slots.pop(0)
            bound[param.name] = self.convert(param, value)
        ctx = CommandContext(
            session=session,
            cmdlet=self,
            error_action=self._action(common.get("ErrorAction"), session.error_preference, "ErrorAction"),
            warning_action=self._action(common.get("WarningAction"), session.warning_preference, "WarningAction"),
            confirm=None if "Confirm" not in common else is_truthy(common["Confirm"]),
            what_if=is_truthy(common.get("WhatIf", False)),
        )
        if pipeline_input is None:
            self._invoke(ctx, bound)
            return ctx.output
        if self.collect_input:
            self._invoke(ctx, {**bound, "__pipeline__": list(pipeline_input)})
            return ctx.output
        for item in pipeline_input:
            receiver, value = self._receiver(item, bound)
            if receiver is None:
                ctx.write_error(
                    PSErrorRecord(
                        message="The input object cannot be bound to any parameters for the command either "
                        "because the command does not take pipeline input or the input and its properties "
                        "do not match any of the parameters that take pipeline input.",
                        category="InvalidArgument",
                        fully_qualified_error_id=f"InputObjectNotBound,{self.command_class}",
                        exception_type=BINDING_EXCEPTION,
                        target_name=to_ps_string(item),
                        target_object=item,
                        activity=self.name,
                    )
                )
                continue
            per_item = dict(bound)
            per_item[receiver.name] = self.convert(receiver, value)
            self._invoke(ctx, per_item)
        return ctx.output

    def _receiver(self, item: object, bound: Mapping[str, object]) -> tuple[Param | None, object]:
        """Pick the parameter ``item`` binds to: by value (typed first), then by property name."""
        by_value = [p for p in self.params if p.pipeline and p.name not in bound]
        for param in by_value:
            if param.pipeline_type is None or (
                isinstance(item, PSObject) and item.PSTypeNames[:1] == [param.pipeline_type]
            ):
                return param, item
        if isinstance(item, PSObject):
            for param in self.params:
                if not param.by_property or param.name in bound:
                    continue
                for name in (param.name, *param.aliases):
                    value = _property(item, name)
                    if value is not None:
                        return param, value
        # An untyped object still reaches the first by-value parameter, whose body reports the wrong type.
        return (by_value[0], item) if by_value else (None, item)

    def _invoke(self, ctx: CommandContext, bound: dict[str, object]) -> None:
        try:
            self.body(ctx, bound)
        except HostError as exc:
            ctx.write_error(exc)

    def _action(self, value: object, default: str, param: str) -> str:
        if value is None:
            return default
        text = to_ps_string(value)
        if text.casefold() not in ACTIONS:
            raise self._binding_error(
                f"Cannot bind parameter '{param}'. Cannot convert value \"{text}\" to type "
                '"System.Management.Automation.ActionPreference". Error: "Unable to match the identifier '
                f"name {text} to a valid enumerator name. Specify one of the following enumerator names "
                'and try again: SilentlyContinue, Stop, Continue, Inquire, Ignore, Suspend"',
                "CannotConvertArgumentNoMessage",
                param,
            )
        return text


def _property(item: PSObject, name: str) -> object:
    """Return the value of ``item``'s property ``name`` (case-insensitive), or None."""
    meta = item.PSObject
    for prop in [*meta.adapted_properties, *meta.extended_properties]:
        if prop.name.casefold() == name.casefold():
            return prop.get_value(item)
    return None


def _dotnet(kind: str) -> str:
    return {
        "str": "System.String",
        "str[]": "System.String[]",
        "int": "System.Int64",
        "bool": "System.Boolean",
        "switch": "System.Management.Automation.SwitchParameter",
        "guid": "System.Guid",
        "choice": "System.String",
    }.get(kind, "System.Object")


def _scalar_string(value: object) -> str:
    if isinstance(value, PSObject) and not isinstance(value, str | int | float):
        raise TypeError("A complex object cannot be converted to a string here.")
    return to_ps_string(value)


def _convert(param: Param, value: object) -> object:
    kind = param.kind
    if kind in {"object", "object[]"}:
        if kind == "object[]":
            return list(value) if isinstance(value, list) else [value]
        return value
    if kind == "str[]":
        items = value if isinstance(value, list) else [value]
        return [_scalar_string(v) for v in items]
    if isinstance(value, list):
        if len(value) != 1:
            raise TypeError("Specified method is not supported.")
        value = value[0]
    if kind == "str":
        return _scalar_string(value)
    if kind in {"switch", "bool"}:
        if isinstance(value, str) and kind == "bool":
            raise TypeError("Boolean parameters accept only Boolean values and numbers.")
        return is_truthy(value)
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = _scalar_string(value).strip()
        multipliers = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
        suffix = text[-2:].casefold()
        if suffix in multipliers and text[:-2].strip().isdigit():
            return int(text[:-2]) * multipliers[suffix]
        try:
            return int(text)
        except ValueError:
            raise ValueError("Input string was not in a correct format.") from None
    if kind == "guid":
        if isinstance(value, uuid.UUID):
            return uuid.UUID(int=value.int)
        try:
            return uuid.UUID(_scalar_string(value))
        except ValueError:
            raise ValueError(
                "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
            ) from None
    if kind == "choice":
        text = _scalar_string(value)
        for choice in param.choices:
            if choice.casefold() == text.casefold():
                return choice
        raise ValueError(
            f"Unable to match the identifier name {text} to a valid enumerator name. Specify one of the "
            f"following enumerator names and try again: {', '.join(param.choices)}"
        )
    raise TypeError(f"unknown parameter kind {kind}")


_MODULE_BY_NAMESPACE = (
    ("Microsoft.HyperV.PowerShell.", "Hyper-V"),
    ("Microsoft.Vhd.PowerShell.", "Hyper-V"),  # Get-VHD, New-VHD ... are exported by the Hyper-V module
)
_MODULE_BY_NAME = {
    "out-null": "Microsoft.PowerShell.Core",
    "remove-item": "Microsoft.PowerShell.Management",
    "test-path": "Microsoft.PowerShell.Management",
}


def module_of(cmdlet: Cmdlet) -> str:
    """The module that exports ``cmdlet`` on Windows (what ``(Get-Command X).ModuleName`` says)."""
    if cmdlet.module:
        return cmdlet.module
    for prefix, module in _MODULE_BY_NAMESPACE:
        if cmdlet.command_class.startswith(prefix):
            return module
    return _MODULE_BY_NAME.get(cmdlet.name.casefold(), "Microsoft.PowerShell.Utility")


class Registry:
    """The commands a session can run, by name or alias, case-insensitively, or as ``Module\\Name``.

    As in PowerShell (about_Command_Precedence), a cmdlet added later hides an earlier one of the same name, and
    the module-qualified name still reaches the hidden one; a qualifier naming no module that exports the
    command resolves to nothing (CommandNotFoundException).
    """

    def __init__(self, cmdlets: Sequence[Cmdlet] = ()) -> None:
        self._by_name: dict[str, Cmdlet] = {}
        self._by_module: dict[tuple[str, str], Cmdlet] = {}
        for cmdlet in cmdlets:
            self.add(cmdlet)

    def add(self, cmdlet: Cmdlet) -> None:
        """Register ``cmdlet`` under its name and aliases (hiding an earlier command of the same name)."""
        for name in (cmdlet.name, *cmdlet.aliases):
            self._by_name[name.casefold()] = cmdlet
        self._by_module[(module_of(cmdlet).casefold(), cmdlet.name.casefold())] = cmdlet

    def get(self, name: str) -> Cmdlet | None:
        """Return the cmdlet called ``name`` (``Name`` or ``Module\\Name``), or None."""
        module, qualified, short = name.rpartition("\\")
        if qualified:
            return self._by_module.get((module.casefold(), short.casefold()))
        return self._by_name.get(name.casefold())

    def names(self) -> Mapping[str, Cmdlet]:
        """Return the registry as a read-only mapping."""
        return dict(self._by_name)


def hashtable_pairs(table: PSHashtable) -> list[tuple[str | None, object]]:
    """Return a splatted hashtable as named arguments."""
    return [(to_ps_string(k), v) for k, v in table.items()]
