"""ConvertTo-Json and ConvertFrom-Json as Windows PowerShell 5.1 behaves.

5.1 specifics kept: enums serialize as their number; DateTime as ``"\\/Date(ms)\\/"``; TimeSpan as an object of
its properties; Guid as a string; ``'``, ``<``, ``>`` and ``&`` escaped as ``\\u0027`` and so on; objects deeper
than -Depth (default 2) become their ToString() text; ConvertFrom-Json yields PSCustomObjects.
"""

from __future__ import annotations

import datetime
import enum
import json
import uuid

from psrpcore.types import PSObject

from .values import ErrorRecordValue, PSHashtable, new_custom_object, property_names, to_ps_string

__all__ = ["from_json", "to_json"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timespan(value: datetime.timedelta) -> dict[str, object]:
    ticks = int(value.total_seconds() * 10_000_000)
    total = value.total_seconds()
    days, rest = divmod(int(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return {
        "Ticks": ticks,
        "Days": days,
        "Hours": hours,
        "Milliseconds": int(value.microseconds / 1000),
        "Minutes": minutes,
        "Seconds": seconds,
        "TotalDays": total / 86400,
        "TotalHours": total / 3600,
        "TotalMilliseconds": total * 1000,
        "TotalMinutes": total / 60,
        "TotalSeconds": total,
    }


def _plain(value: object, depth: int, limit: int) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, uuid.UUID):
        return str(uuid.UUID(int=value.int))
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return f"/Date({int((moment - _EPOCH).total_seconds() * 1000)})/"
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list | tuple):
        return [_plain(v, depth, limit) for v in value]
    if depth > limit:
        return to_ps_string(value)
    if isinstance(value, datetime.timedelta):
        return _timespan(value)
    if isinstance(value, PSHashtable):
        return {to_ps_string(k): _plain(v, depth + 1, limit) for k, v in value.items()}
    if isinstance(value, ErrorRecordValue):
        record = value.record
        return {
            "Exception": {"Message": record.message},
            "FullyQualifiedErrorId": record.fully_qualified_error_id,
            "CategoryInfo": {"Category": record.category, "TargetName": record.target_name},
        }
    if isinstance(value, PSObject):
        return {name: _plain(value[name], depth + 1, limit) for name in property_names(value)}
    return to_ps_string(value)


def _escape(text: str) -> str:
    text = text.replace("/Date(", "\\/Date(").replace(")/", ")\\/") if text.startswith('"/Date(') else text
    for ch, code in (("'", "\\u0027"), ("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, code)
    return text


def _dump(value: object, compress: bool, indent: int) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}" if compress else "{\n\n" + " " * indent + "}"
        if compress:
            return "{" + ",".join(f"{_dump(k, True, 0)}:{_dump(v, True, 0)}" for k, v in value.items()) + "}"
        pad = " " * (indent + 4)
        inner = ",\n".join(f"{pad}{_dump(k, False, 0)}:  {_dump(v, False, indent + 4)}" for k, v in value.items())
        return "{\n" + inner + "\n" + " " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]" if compress else "[\n\n" + " " * indent + "]"
        if compress:
            return "[" + ",".join(_dump(v, True, 0) for v in value) + "]"
        pad = " " * (indent + 4)
        inner = ",\n".join(pad + _dump(v, False, indent + 4) for v in value)
        return "[\n" + inner + "\n" + " " * indent + "]"
    return _escape(json.dumps(value, ensure_ascii=False))


def to_json(value: object, depth: int = 2, compress: bool = False) -> str:
    """Return ``ConvertTo-Json -Depth depth [-Compress]`` of ``value``."""
    return _dump(_plain(value, 0, depth), compress, 0)


def _from_plain(value: object) -> object:
    if isinstance(value, dict):
        return new_custom_object([(k, _from_plain(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value


def from_json(text: str) -> object:
    """Return ``ConvertFrom-Json`` of ``text``: objects become PSCustomObjects; raises ValueError if invalid."""
    try:
        return _from_plain(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Invalid JSON primitive: {exc.msg} at position {exc.pos}.") from None
