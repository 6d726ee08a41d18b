"""PowerShell's operators on values: comparison (-eq, -like, -contains, -in...), +, -f, -is, string escapes."""

from __future__ import annotations

import enum
import uuid

from polyvisor_hyperv_loopback.powershell.values import PSHashtable, enumerate_value, is_truthy, to_ps_string

from .syntax import Node, unsupported
from .wildcards import wildcard_match

__all__ = ["add", "compare", "equals", "format_string", "is_type", "split_any", "unescape"]


def compare(op: str, left: object, right: object) -> object:
    base = op.lstrip("-").lower()
    if base[:1] in {"c", "i"} and base[1:] in {"eq", "ne", "gt", "lt", "ge", "le", "like", "notlike"}:
        base = base[1:]
    if isinstance(left, list) and base in {"eq", "ne"}:
        return [item for item in left if compare(op, item, right)]
    if base in {"eq", "ne"}:
        equal = equals(left, right)
        return equal if base == "eq" else not equal
    if base in {"gt", "lt", "ge", "le"}:
        a, b = coerce_pair(left, right)
        return {"gt": a > b, "lt": a < b, "ge": a >= b, "le": a <= b}[base]  # type: ignore[operator]
    if base in {"like", "notlike"}:
        hit = wildcard_match(to_ps_string(right), to_ps_string(left))
        return hit if base == "like" else not hit
    if base in {"contains", "notcontains"}:
        hit = any(equals(item, right) for item in enumerate_value(left))
        return hit if base == "contains" else not hit
    if base in {"in", "notin"}:
        hit = any(equals(item, left) for item in enumerate_value(right))
        return hit if base == "in" else not hit
    raise ValueError(op)


def equals(left: object, right: object) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, str):
        return left.casefold() == to_ps_string(right).casefold()
    if isinstance(left, enum.Enum):
        if isinstance(right, str):
            return left.name.casefold() == right.casefold()
        return int(left.value) == right
    if isinstance(left, bool):
        return left == is_truthy(right)
    if isinstance(left, int | float):
        try:
            return left == (float(to_ps_string(right)) if isinstance(right, str) else right)
        except ValueError:
            return False
    return left is right or left == right


def coerce_pair(left: object, right: object) -> tuple[object, object]:
    if isinstance(left, str):
        return left.casefold(), to_ps_string(right).casefold()
    if isinstance(left, int | float) and isinstance(right, str):
        return left, float(right)
    return left, right


def add(left: object, right: object) -> object:
    if left is None:
        return right if not isinstance(right, list) else list(right)
    if isinstance(left, list):
        return [*left, *(right if isinstance(right, list) else [right])]
    if isinstance(left, str):
        return left + to_ps_string(right)
    if isinstance(left, PSHashtable) and isinstance(right, PSHashtable):
        merged = PSHashtable(left.ordered)
        for k, v in [*left.items(), *right.items()]:
            merged[k] = v
        return merged
    if isinstance(left, int | float):
        other = float(right) if isinstance(right, str) and "." in right else right
        if isinstance(other, str):
            other = int(other)
        return left + other  # type: ignore[operator]
    raise TypeError("op_Addition")


def format_string(fmt: str, args: list[object]) -> str:
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "{" and fmt[i : i + 2] == "{{":
            out.append("{")
            i += 2
            continue
        if ch == "}" and fmt[i : i + 2] == "}}":
            out.append("}")
            i += 2
            continue
        if ch == "{":
            end = fmt.index("}", i)
            index = int(fmt[i + 1 : end].split(",")[0].split(":")[0])
            out.append(to_ps_string(args[index]))
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "`" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch == '"' and text[i + 1 : i + 2] == '"':
            out.append('"')
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def split_any(value: str, separators: str) -> list[str]:
    parts = [""]
    for ch in value:
        if ch in separators:
            parts.append("")
        else:
            parts[-1] += ch
    return parts


IS_TYPES: dict[str, tuple[type, ...]] = {
    "enum": (enum.Enum,),
    "system.enum": (enum.Enum,),
    "string": (str,),
    "system.string": (str,),
    "int": (int,),
    "system.int32": (int,),
    "long": (int,),
    "system.int64": (int,),
    "bool": (bool,),
    "system.boolean": (bool,),
    "guid": (uuid.UUID,),
    "system.guid": (uuid.UUID,),
    "hashtable": (PSHashtable,),
    "array": (list,),
    "object[]": (list,),
}


def is_type(value: object, type_name: str, node: Node) -> bool:
    """``value -is [type]`` for the types this host knows; an enum is not an int, a bool not an int."""
    types = IS_TYPES.get(type_name)
    if types is None:
        raise unsupported(node, f"the type test -is [{type_name}]")
    if isinstance(value, enum.Enum):
        return types == (enum.Enum,)
    if isinstance(value, bool) and types == (int,):
        return False
    return isinstance(value, types)
