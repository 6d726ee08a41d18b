"""Generic cmdlets the host needs: JSON, Select-Object, Write-Output, Out-Null, Start-Sleep, Where-Object."""

from __future__ import annotations

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.powershell.errors import HostError
from polyvisor_hyperv_loopback.powershell.psjson import from_json, to_json
from polyvisor_hyperv_loopback.powershell.values import enumerate_value, new_custom_object, property_names, to_ps_string
from polyvisor_hyperv_loopback.powershell.wildcards import has_wildcard, wildcard_match

from .base import Cmdlet, CommandContext, Param

__all__ = ["CMDLETS"]

UTIL = "Microsoft.PowerShell.Commands"


def _inputs(args: dict[str, object]) -> list[object]:
    if "__pipeline__" in args:
        items: list[object] = list(args["__pipeline__"])  # type: ignore[call-overload]
        return items
    if "InputObject" in args:
        return [args["InputObject"]]
    return []


def _convert_to_json(ctx: CommandContext, args: dict[str, object]) -> None:
    items = _inputs(args)
    if not items:
        return
    value = items[0] if len(items) == 1 else items
    depth = int(args.get("Depth", 2))  # type: ignore[call-overload]
    ctx.write(to_json(value, depth=depth, compress=bool(args.get("Compress"))))


def _convert_from_json(ctx: CommandContext, args: dict[str, object]) -> None:
    text = "\n".join(to_ps_string(item) for item in _inputs(args))
    try:
        ctx.write(from_json(text))
    except ValueError as exc:
        ctx.fail(
            HostError(
                str(exc),
                error_id="System.ArgumentException",
                category="NotSpecified",
                exception_type="System.ArgumentException",
            )
        )


def _select_object(ctx: CommandContext, args: dict[str, object]) -> None:
    patterns = [to_ps_string(p) for p in enumerate_value(args.get("Property"))]
    for p in enumerate_value(args.get("Property")):
        if not isinstance(p, str):
            ctx.fail(
                HostError(
                    "Calculated properties are not supported by this host.",
                    error_id="NotSupported",
                    category="NotImplemented",
                    exception_type="System.NotSupportedException",
                )
            )
    for item in _inputs(args):
        names = property_names(item) if isinstance(item, PSObject) else []
        pairs: list[tuple[str, object]] = []
        for pattern in patterns:
            if has_wildcard(pattern):
                pairs.extend((n, item[n]) for n in names if wildcard_match(pattern, n))  # type: ignore[index]
                continue
            match = next((n for n in names if n.casefold() == pattern.casefold()), None)
            pairs.append((match or pattern, item[match] if match else None))  # type: ignore[index]
        obj = new_custom_object(pairs)
        if isinstance(item, PSObject):
            obj.PSObject.type_names.insert(0, f"Selected.{item.PSTypeNames[0]}")
        ctx.write(obj)


def _write_output(ctx: CommandContext, args: dict[str, object]) -> None:
    for item in _inputs(args):
        for value in enumerate_value(item) if not args.get("NoEnumerate") else [item]:
            ctx.write(value)


def _out_null(ctx: CommandContext, args: dict[str, object]) -> None:
    return None


def _start_sleep(ctx: CommandContext, args: dict[str, object]) -> None:
    # Microsoft.PowerShell.Utility\Start-Sleep (5.1; PowerShell-Docs reference/5.1/.../Start-Sleep.md): -Seconds
    # (Int32, position 0) or -Milliseconds (Int32; -m by prefix); a stopped pipeline ends the sleep at once.
    seconds = args.get("Seconds", 0)
    milliseconds = args.get("Milliseconds", 1000 * int(seconds))  # type: ignore[call-overload]
    ctx.session.sleep(max(int(milliseconds), 0) / 1000)  # type: ignore[call-overload]


def _where_object(ctx: CommandContext, args: dict[str, object]) -> None:
    # Microsoft.PowerShell.Core\Where-Object, the comparison-statement syntax only (PowerShell-Docs
    # reference/5.1/Microsoft.PowerShell.Core/Where-Object.md): -Property (position 0), -Value (position 1) and one
    # operator switch; -EQ compares case-insensitively, -CEQ "is case-sensitive". Objects that match pass on.
    wanted = args.get("Value")
    sensitive = bool(args.get("CEQ"))
    if not sensitive and not args.get("EQ"):
        ctx.fail(
            HostError(
                "Only the -EQ and -CEQ comparison statements are supported by this host.",
                error_id="NotSupported",
                category="NotImplemented",
                exception_type="System.NotSupportedException",
            )
        )
    name = to_ps_string(args.get("Property"))
    for item in _inputs(args):
        names = property_names(item) if isinstance(item, PSObject) else []
        match = next((n for n in names if n.casefold() == name.casefold()), None)
        value = item[match] if match else None  # type: ignore[index]
        if value is None or wanted is None:
            equal = value is None and wanted is None
        else:
            left, right = to_ps_string(value), to_ps_string(wanted)
            equal = left == right if sensitive else left.casefold() == right.casefold()
        if equal:
            ctx.write(item)


_INPUT = Param("InputObject", "object", pipeline=True)

CMDLETS = (
    Cmdlet(
        "ConvertTo-Json",
        f"{UTIL}.ConvertToJsonCommand",
        (Param("InputObject", "object", position=0, pipeline=True), Param("Depth", "int"), Param("Compress", "switch")),
        _convert_to_json,
        collect_input=True,
    ),
    Cmdlet(
        "ConvertFrom-Json",
        f"{UTIL}.ConvertFromJsonCommand",
        (Param("InputObject", "object", position=0, pipeline=True),),
        _convert_from_json,
        collect_input=True,
    ),
    Cmdlet(
        "Select-Object",
        f"{UTIL}.SelectObjectCommand",
        (_INPUT, Param("Property", "object[]", position=0)),
        _select_object,
        aliases=("select",),
        collect_input=True,
    ),
    Cmdlet(
        "Write-Output",
        f"{UTIL}.WriteOutputCommand",
        (Param("InputObject", "object", position=0, pipeline=True), Param("NoEnumerate", "switch")),
        _write_output,
        aliases=("echo", "write"),
        collect_input=True,
    ),
    Cmdlet("Out-Null", f"{UTIL}.OutNullCommand", (_INPUT,), _out_null, collect_input=True),
    Cmdlet(
        "Where-Object",
        f"{UTIL}.WhereObjectCommand",
        (
            _INPUT,
            Param("Property", "str", position=0),
            Param("Value", "object", position=1),
            Param("EQ", "switch"),
            Param("CEQ", "switch"),
        ),
        _where_object,
        aliases=("where", "?"),
        collect_input=True,
        module="Microsoft.PowerShell.Core",
    ),
    Cmdlet(
        "Start-Sleep",
        f"{UTIL}.StartSleepCommand",
        (Param("Seconds", "int", position=0), Param("Milliseconds", "int")),
        _start_sleep,
        aliases=("sleep",),
    ),
)
