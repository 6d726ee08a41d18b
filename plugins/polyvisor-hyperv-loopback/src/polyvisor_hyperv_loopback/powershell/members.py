"""Members of .NET objects as scripts reach them: properties, a whitelist of methods, and static members
([Console]::In/Out, [System.Text.Encoding], [System.Convert], [System.IO.File]::Open, [byte[]]::new,
[ScriptBlock]::Create)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from psrpcore.types import PSObject

from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped, PSErrorRecord
from polyvisor_hyperv_loopback.powershell.values import (
    ErrorRecordValue,
    PSHashtable,
    dotnet_type_name,
    missing,
    property_names,
    property_value,
    to_ps_string,
)

from .operators import split_any
from .scriptblocks import ScriptBlock
from .streams import FileReader, FileStream, method_error, open_file
from .syntax import Node, node_text, type_key, unsupported

__all__ = ["Console", "Members", "PropertyView"]


@dataclass
class Console:
    """The process's standard streams as [Console] sees them."""

    stdin: BinaryIO
    stdout: TextIO


class Members:
    """Reads members of values and calls their methods (and the static ones of a few types)."""

    def __init__(self, console: Console | None, files: FileReader | None = None) -> None:
        self._console = console
        self._files = files

    def member(self, value: object, name: str, node: Node) -> object:
        """Return ``value.name`` (on a list: the member of each item, as member enumeration does)."""
        low = name.casefold()
        if isinstance(value, list):
            if low in {"count", "length"}:
                return len(value)
            return [m for m in (self.member(v, name, node) for v in value) if m is not None]
        if isinstance(value, PSHashtable):
            if low == "count":
                return len(value)
            if low == "keys":
                return value.keys()
            return value[name]
        if isinstance(value, ErrorRecordValue):
            return self._error_member(value.record, low, node)
        if isinstance(value, str) and low == "length":
            return len(value)
        if isinstance(value, bytes | bytearray) and low in {"length", "count"}:
            return len(value)
        if isinstance(value, FileStream):
            return value.member(low, node)
        if isinstance(value, PSObject):
            if low == "psobject":
                return _PSObjectView(value)
            found = property_value(value, name)
            return None if missing(found) else found
        if isinstance(value, _PSObjectView) and low == "properties":
            return [PropertyView(value.target, n) for n in property_names(value.target)]
        if isinstance(value, PropertyView) and low in {"name", "value"}:
            return value.name if low == "name" else value.target[value.name]
        if isinstance(value, _Record) and low in value.fields:
            return value.fields[low]
        if value is None:
            return None
        if isinstance(value, str | int | float | bool | bytes | uuid.UUID):
            return None
        raise unsupported(node, f"the member '{name}' of {dotnet_type_name(value)}")

    def _error_member(self, record: PSErrorRecord, low: str, node: Node) -> object:
        if low == "exception":
            return _Record(
                {"message": record.message, "__type__": record.exception_type},
                record.exception_type,
                record.message,
            )
        if low == "categoryinfo":
            from psrpcore.types import ErrorCategory

            category: object = (
                ErrorCategory[record.category] if record.category in ErrorCategory.__members__ else record.category
            )
            return _Record(
                {
                    "category": category,
                    "targetname": record.target_name,
                    "activity": record.activity,
                    "reason": record.exception_type.rsplit(".", 1)[-1],
                },
                "System.Management.Automation.ErrorCategoryInfo",
                record.category,
            )
        if low == "fullyqualifiederrorid":
            return record.fully_qualified_error_id
        if low == "targetobject":
            return record.target_object
        raise unsupported(node, f"the ErrorRecord member '{low}'")

    def method(self, value: object, name: str, args: list[object], node: Node) -> object:
        """Return ``value.name(args)`` for the whitelisted methods."""
        low = name.casefold()
        if low == "tostring" and not args:
            return to_ps_string(value)
        if low == "gettype" and not args:
            type_name = value.type_name if isinstance(value, _Record) else dotnet_type_name(value)
            return _Record(
                {"fullname": type_name, "name": type_name.rsplit(".", 1)[-1]}, "System.RuntimeType", type_name
            )
        if isinstance(value, str):
            if low == "trim" and not args:
                return value.strip(" \t\r\n\v\f\u00a0\ufeff")
            if low == "tolower" and not args:
                return value.lower()
            if low == "toupper" and not args:
                return value.upper()
            if low == "contains" and len(args) == 1:
                return to_ps_string(args[0]) in value
            if low == "startswith" and len(args) == 1:
                return value.startswith(to_ps_string(args[0]))
            if low in {"trimend", "trimstart"} and len(args) <= 1:
                # String.TrimEnd(params char[]): a string argument converts to its characters; none trims white space.
                chars = to_ps_string(args[0]) if args else " \t\r\n\v\f\u00a0\ufeff"
                return value.rstrip(chars) if low == "trimend" else value.lstrip(chars)
            if low == "split" and len(args) == 1:
                sep = to_ps_string(args[0])
                return [value] if not sep else split_any(value, sep)
        if isinstance(value, PSHashtable) and low == "containskey" and len(args) == 1:
            return args[0] in value
        if isinstance(value, _ReaderWriter):
            return value.call(low, args, node)
        if isinstance(value, _Encoding):
            return value.call(low, args, node)
        if isinstance(value, FileStream):
            return value.call(low, args, node)
        raise unsupported(node, f"the method '{name}' on {dotnet_type_name(value)}")

    def static_member(self, type_node: Node, name: str, node: Node) -> object:
        """Return ``[type]::name``."""
        type_name = type_key(type_node)
        low = name.casefold()
        if type_name == "console" and self._console is not None:
            if low == "in":
                return _ReaderWriter(self._console, "in")
            if low == "out":
                return _ReaderWriter(self._console, "out")
        if type_name == "system.text.encoding" and low in {"utf8", "unicode", "ascii"}:
            return _Encoding(low)
        raise unsupported(node, f"the static member [{type_name}]::{name}")

    def static_call(self, type_node: Node, name: str, args: list[object], node: Node) -> object:
        """Return ``[type]::name(args)``."""
        type_name = type_key(type_node)
        low = name.casefold()
        if type_name in {"scriptblock", "system.management.automation.scriptblock"} and low == "create":
            if len(args) != 1:
                raise unsupported(node, "[ScriptBlock]::Create with other than one argument")
            return ScriptBlock(to_ps_string(args[0]))
        if type_name in {"system.io.file", "io.file"} and low == "open":
            return open_file(self._files, args, node)
        array_of = node_text(type_node).replace(" ", "").casefold()  # type_key strips every bracket
        if array_of in {"[byte[]]", "[system.byte[]]"} and low == "new" and len(args) == 1:
            size = int(args[0])  # type: ignore[call-overload]
            if size < 0:
                raise method_error(
                    "new", 1, "Arithmetic operation resulted in an overflow.", "OverflowException"
                )  # ASSUMPTION: the text of a negative array size
            return bytearray(size)
        if type_name == "system.convert" and low == "tobase64string" and len(args) == 3:
            data, offset, length = args[0], int(args[1]), int(args[2])  # type: ignore[call-overload]
            if isinstance(data, bytes | bytearray) and min(offset, length) >= 0 and offset + length <= len(data):
                return base64.b64encode(bytes(data[offset : offset + length])).decode("ascii")
            raise method_error(
                "ToBase64String",
                3,
                "Index was out of range. Must be non-negative and less than the size of the collection.",
                "ArgumentOutOfRangeException",
            )
        if type_name == "system.convert" and len(args) == 1:
            if low == "frombase64string":
                text = to_ps_string(args[0])
                try:
                    return base64.b64decode(text.encode("ascii"), validate=True)
                except (binascii.Error, UnicodeEncodeError):
                    raise PipelineStopped(
                        PSErrorRecord(
                            message='Exception calling "FromBase64String" with "1" argument(s): "The input is not a '
                            "valid Base-64 string as it contains a non-base 64 character, more than two padding "
                            'characters, or an illegal character among the padding characters. "',
                            category="NotSpecified",
                            fully_qualified_error_id="FormatException",
                            exception_type="System.Management.Automation.MethodInvocationException",
                        )
                    ) from None
            if low == "tobase64string" and isinstance(args[0], bytes | bytearray | list):
                data = bytes(args[0]) if isinstance(args[0], bytes | bytearray) else bytes(int(b) for b in args[0])  # type: ignore[call-overload,unused-ignore]
                return base64.b64encode(data).decode("ascii")
        raise unsupported(node, f"the static method [{type_name}]::{name}")


@dataclass
class _PSObjectView:
    """``$obj.PSObject``."""

    target: PSObject


@dataclass
class PropertyView:
    """One of ``$obj.PSObject.Properties`` (a PSPropertyInfo): Name, and a Value that reads and writes the object."""

    target: PSObject
    name: str


@dataclass
class _Record:
    """A read-only .NET object seen through a few properties (Exception, CategoryInfo, Type)."""

    fields: dict[str, object]
    type_name: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class _ReaderWriter:
    """[Console]::In and [Console]::Out."""

    console: Console
    which: str

    def call(self, low: str, args: list[object], node: Node) -> object:
        if self.which == "in" and low == "readtoend" and not args:
            return self.console.stdin.read().decode("utf-8", "replace")
        if self.which == "out" and low in {"write", "writeline"} and len(args) <= 1:
            text = to_ps_string(args[0]) if args else ""
            self.console.stdout.write(text + ("\r\n" if low == "writeline" else ""))
            return None
        if self.which == "out" and low == "flush" and not args:
            self.console.stdout.flush()
            return None
        raise unsupported(node, f"the method '{low}' on [Console]::{self.which}")


@dataclass
class _Encoding:
    """[System.Text.Encoding]::UTF8 / Unicode / ASCII."""

    name: str

    @property
    def codec(self) -> str:
        return {"utf8": "utf-8", "unicode": "utf-16-le", "ascii": "ascii"}[self.name]

    def call(self, low: str, args: list[object], node: Node) -> object:
        if low == "getstring" and len(args) == 1 and isinstance(args[0], bytes | list):
            data = args[0] if isinstance(args[0], bytes) else bytes(int(b) for b in args[0])  # type: ignore[call-overload,unused-ignore]
            text = data.decode(self.codec, "replace")
            return text[1:] if text.startswith("\ufeff") else text
        if low == "getbytes" and len(args) == 1:
            return to_ps_string(args[0]).encode(self.codec, "replace")
        raise unsupported(node, f"the Encoding method '{low}'")
