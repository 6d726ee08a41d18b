"""Script blocks and their ``param()`` blocks: ``[ScriptBlock]::Create(text)``, and arguments bound to parameters.

A script (a PSRP script command, or a script block run with ``&``) that starts with ``param(...)`` gets its
arguments bound as PowerShell binds a script's (about_Functions_Advanced_Parameters, about_Parameters): by name,
case-insensitively or by an unambiguous prefix, then by position in declaration order; each value converted to the
parameter's type constraint; an unbound parameter takes its default, or its type's empty value. With
``[CmdletBinding()]`` a name that is no parameter is an error and the common parameter ``-ErrorAction`` is taken;
without it such arguments would go to ``$args``, which this host does not model (it refuses them). The subset:
type constraints ``[string]``, ``[int]``, ``[long]``, ``[uint16]``, ``[uint32]``, ``[bool]``, ``[switch]``,
``[byte[]]``; other attributes are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import PipelineStopped, PSErrorRecord
from .syntax import Node, named_nodes, node_text, strip, unsupported
from .values import is_truthy, to_ps_string

__all__ = ["ScriptBlock", "bind_parameters", "param_block"]

BINDING_EXCEPTION = "System.Management.Automation.ParameterBindingException"
_RANGES = {
    "int": ("System.Int32", -(2**31), 2**31 - 1),
    "int32": ("System.Int32", -(2**31), 2**31 - 1),
    "long": ("System.Int64", -(2**63), 2**63 - 1),
    "int64": ("System.Int64", -(2**63), 2**63 - 1),
    "uint16": ("System.UInt16", 0, 2**16 - 1),
    "uint32": ("System.UInt32", 0, 2**32 - 1),
}


@dataclass(frozen=True)
class ScriptBlock:
    """A script block made from text (``[ScriptBlock]::Create``): parsed when it runs."""

    text: str

    def __str__(self) -> str:
        return self.text  # a script block converts to its text


@dataclass(frozen=True)
class _Parameter:
    name: str
    type_name: str | None
    default: Node | None


def _declared(param_block: Node) -> tuple[bool, list[_Parameter]]:
    advanced = False
    declared: list[_Parameter] = []
    for child in named_nodes(param_block):
        if child.type == "attribute_list":
            for attribute in named_nodes(child):
                name = node_text(attribute).strip("[]").replace(" ", "").casefold()
                if name not in {"cmdletbinding()", "cmdletbinding"}:
                    raise unsupported(attribute, f"the script attribute {node_text(attribute)}")
                advanced = True
        elif child.type == "parameter_list":
            for parameter in (c for c in named_nodes(child) if c.type == "script_parameter"):
                declared.append(_parameter(parameter))
    return advanced, declared


def _parameter(node: Node) -> _Parameter:
    type_name: str | None = None
    default: Node | None = None
    name = ""
    for child in named_nodes(node):
        if child.type == "attribute_list":
            for attribute in named_nodes(child):
                literal = named_nodes(attribute)[0] if named_nodes(attribute) else attribute
                if literal.type != "type_literal":
                    raise unsupported(attribute, f"the parameter attribute {node_text(attribute)}")
                type_name = node_text(literal).strip("[]").replace(" ", "").casefold().removeprefix("system.")
        elif child.type == "variable":
            name = node_text(child)[1:]
        elif child.type == "script_parameter_default":
            default = named_nodes(child)[-1]
    if type_name is not None and type_name not in {*_RANGES, "string", "bool", "boolean", "switch", "byte[]"}:
        raise unsupported(node, f"the parameter type [{type_name}]")
    return _Parameter(name, type_name, default)


def bind_parameters(
    param_block: Node,
    arguments: Sequence[tuple[str | None, object]],
    evaluate: Callable[[Node], object],
    script: str,
) -> tuple[dict[str, object], str | None]:
    """Bind ``arguments`` to the block's parameters; return the variables to set and an ``-ErrorAction`` given.

    ``script`` names the script in error records. A binding failure raises the ParameterBindingException record
    PowerShell writes (its wording: ASSUMPTION beyond the error ids).
    """
    advanced, declared = _declared(param_block)
    values: dict[str, object] = {}
    error_action: str | None = None
    positional: list[object] = []
    for name, value in arguments:
        if name is None:
            positional.append(value)
            continue
        if advanced and name.casefold() in {"erroraction", "ea"}:
            error_action = to_ps_string(value)
            continue
        found = _lookup(declared, name, script)
        if found is None:
            raise _binding_error(
                f"A parameter cannot be found that matches parameter name '{name}'.", "NamedParameterNotFound", script
            )
        if found.name in values:
            raise _binding_error(
                f"Cannot bind parameter because parameter '{found.name}' is specified more than once.",
                "ParameterAlreadyBound",
                script,
            )
        # A switch given without a value (-Force; PSRP sends no value either) is present: $true.
        present = found.type_name == "switch" and value is None
        values[found.name] = True if present else _convert(found, value, script)
    free = [p for p in declared if p.name not in values and p.type_name != "switch"]
    if len(positional) > len(free):
        raise _binding_error(
            f"A positional parameter cannot be found that accepts argument '{to_ps_string(positional[len(free)])}'.",
            "PositionalParameterNotFound",
            script,
        )
    for parameter, value in zip(free, positional, strict=False):
        values[parameter.name] = _convert(parameter, value, script)
    for parameter in declared:
        if parameter.name not in values:
            initial = evaluate(parameter.default) if parameter.default is not None else None
            values[parameter.name] = _convert(parameter, initial, script, unbound=parameter.default is None)
    return values, error_action


def _lookup(declared: list[_Parameter], name: str, script: str) -> _Parameter | None:
    low = name.casefold()
    exact = [p for p in declared if p.name.casefold() == low]
    if exact:
        return exact[0]
    matches = [p for p in declared if p.name.casefold().startswith(low)]
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise _binding_error(
            f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. Possible matches "
            f"include: {names}.",
            "AmbiguousParameter",
            script,
        )
    return matches[0] if matches else None


def _convert(parameter: _Parameter, value: object, script: str, *, unbound: bool = False) -> object:
    kind = parameter.type_name
    if kind is None:
        return value
    if kind == "string":
        return "" if value is None else to_ps_string(value)
    if kind in {"bool", "boolean", "switch"}:
        return False if unbound else is_truthy(value)
    if kind == "byte[]":
        if value is None or isinstance(value, bytes | bytearray):
            return value
        try:
            items = value if isinstance(value, list) else [value]
            return bytes(int(item) for item in items)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _transformation(parameter, value, "System.Byte[]", script) from None
    dotnet, low, high = _RANGES[kind]
    if value is None:
        return 0
    try:
        number = int(value.strip()) if isinstance(value, str) else value
        if isinstance(number, float):
            number = round(number)  # PowerShell rounds a double to the nearest integer (to even at .5)
        if not isinstance(number, int):
            raise TypeError(number)
    except (TypeError, ValueError):
        raise _transformation(parameter, value, dotnet, script) from None
    if not low <= number <= high:
        raise _transformation(parameter, value, dotnet, script)
    return int(number)


def _transformation(parameter: _Parameter, value: object, dotnet: str, script: str) -> PipelineStopped:
    return _binding_error(
        f"Cannot process argument transformation on parameter '{parameter.name}'. Cannot convert value "
        f'"{to_ps_string(value)}" to type "{dotnet}".',
        "ParameterArgumentTransformationError",
        script,
        exception="System.Management.Automation.ParameterBindingArgumentTransformationException",
    )


def _binding_error(message: str, error_id: str, script: str, *, exception: str = BINDING_EXCEPTION) -> PipelineStopped:
    return PipelineStopped(
        PSErrorRecord(
            message=message,
            category="InvalidArgument",
            fully_qualified_error_id=f"{error_id},{script}" if script else error_id,
            exception_type=exception,
        )
    )


def param_block(root: Node) -> Node | None:
    """The script's ``param()`` block, if it starts with one."""
    first = next(iter(named_nodes(root)), None)
    return first if first is not None and strip(first).type == "param_block" else None
