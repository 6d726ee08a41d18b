"""PowerShell values as the loopback host holds them in Python, and the conversions PowerShell applies.

A PowerShell value is one of: None, bool, int, float, str, list (an object[] array), ``PSHashtable``,
a psrpcore ``PSObject`` (typed Hyper-V objects, PSCustomObject, enums), uuid.UUID, datetime, timedelta, bytes
(a byte[]; bytearray when a script made it, so that a stream can fill it) or ``ErrorRecordValue`` (``$_`` in a
catch block).
"""

from __future__ import annotations

import datetime
import enum
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from psrpcore.types import PSCustomObject, PSNoteProperty, PSObject

from .errors import PSErrorRecord

__all__ = [
    "ErrorRecordValue",
    "PSHashtable",
    "dotnet_type_name",
    "enumerate_value",
    "is_truthy",
    "new_custom_object",
    "property_names",
    "property_value",
    "to_ps_string",
]


class PSHashtable:
    """A Hashtable (or ``[ordered]`` dictionary): string keys compare case-insensitively."""

    def __init__(self, ordered: bool = False) -> None:
        self.ordered = ordered
        self._items: dict[object, tuple[object, object]] = {}

    @staticmethod
    def _key(key: object) -> object:
        return key.casefold() if isinstance(key, str) else key

    def __setitem__(self, key: object, value: object) -> None:
        k = self._key(key)
        original = self._items[k][0] if k in self._items else key
        self._items[k] = (original, value)

    def __getitem__(self, key: object) -> object:
        item = self._items.get(self._key(key))
        return None if item is None else item[1]

    def __contains__(self, key: object) -> bool:
        return self._key(key) in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> Iterator[tuple[object, object]]:
        """Yield (key, value) pairs in insertion order."""
        yield from self._items.values()

    def keys(self) -> list[object]:
        """Return the keys."""
        return [k for k, _ in self._items.values()]


@dataclass
class ErrorRecordValue:
    """``$_`` inside a catch block: an ErrorRecord wrapping its exception."""

    record: PSErrorRecord


def new_custom_object(pairs: list[tuple[str, object]]) -> PSObject:
    """Return a PSCustomObject with note properties in the given order."""
    obj = PSCustomObject()
    for name, value in pairs:
        obj.PSObject.extended_properties.append(PSNoteProperty(name, value=value))
    return obj


def property_names(obj: PSObject) -> list[str]:
    """Return an object's property names: adapted first, then extended (ETS order)."""
    meta = obj.PSObject
    names = [p.name for p in meta.adapted_properties]
    names += [p.name for p in meta.extended_properties if p.name not in names]
    return names


_MISSING = object()


def property_value(obj: object, name: str) -> object:
    """Return a property of ``obj`` looked up case-insensitively, or ``_MISSING``."""
    if isinstance(obj, PSObject):
        for candidate in property_names(obj):
            if candidate.casefold() == name.casefold():
                return obj[candidate]
    return _MISSING


def missing(value: object) -> bool:
    """Return whether ``value`` is the not-found marker of ``property_value``."""
    return value is _MISSING


def enumerate_value(value: object) -> list[object]:
    """Return what the pipeline enumerates for ``value`` (arrays unroll; None is nothing)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def is_truthy(value: object) -> bool:
    """Return PowerShell's conversion of ``value`` to bool."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return int(value.value) != 0
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return len(value) > 0
    if isinstance(value, list):
        if len(value) == 0:
            return False
        if len(value) == 1:
            return is_truthy(value[0])
        return True
    return True


def enum_name(value: enum.Enum) -> str:
    """Return the .NET name of an enum member."""
    return "None" if value.name == "NoMedia" else value.name


def to_ps_string(value: object) -> str:
    """Return PowerShell's string conversion of ``value`` (invariant culture)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, enum.Enum):
        return enum_name(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value)) if not float(value).is_integer() else str(int(value))
    if isinstance(value, uuid.UUID):
        return str(uuid.UUID(int=value.int))
    if isinstance(value, list):
        return " ".join(to_ps_string(v) for v in value)
    if isinstance(value, PSHashtable):
        return "System.Collections.Specialized.OrderedDictionary" if value.ordered else ("System.Collections.Hashtable")
    if isinstance(value, ErrorRecordValue):
        return value.record.message
    if isinstance(value, PSObject):
        text = value.PSObject.to_string
        if text is not None:
            return text
        if isinstance(value, PSCustomObject) or value.PSTypeNames[:1] == [
            "System.Management.Automation.PSCustomObject"
        ]:
            inner = "; ".join(f"{n}={to_ps_string(value[n])}" for n in property_names(value))
            return "@{" + inner + "}"
        return value.PSTypeNames[0]
    if isinstance(value, datetime.datetime):
        return value.strftime("%m/%d/%Y %H:%M:%S")
    if isinstance(value, datetime.timedelta):
        total = int(value.total_seconds())
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return (f"{days}." if days else "") + f"{hours:02}:{minutes:02}:{seconds:02}"
    if isinstance(value, bytes | bytearray):
        return "System.Byte[]"
    return str(value)


def dotnet_type_name(value: object) -> str:
    """Return ``$value.GetType().FullName``."""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, enum.Enum) and isinstance(value, PSObject):
        return value.PSTypeNames[0]
    if isinstance(value, int):
        return "System.Int32" if -(2**31) <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, list):
        return "System.Object[]"
    if isinstance(value, PSHashtable):
        return "System.Collections.Specialized.OrderedDictionary" if value.ordered else ("System.Collections.Hashtable")
    if isinstance(value, uuid.UUID):
        return "System.Guid"
    if isinstance(value, datetime.datetime):
        return "System.DateTime"
    if isinstance(value, datetime.timedelta):
        return "System.TimeSpan"
    if isinstance(value, bytes | bytearray):
        return "System.Byte[]"
    if isinstance(value, ErrorRecordValue):
        return "System.Management.Automation.ErrorRecord"
    if isinstance(value, PSObject):
        return value.PSTypeNames[0]
    return "System.Object"
