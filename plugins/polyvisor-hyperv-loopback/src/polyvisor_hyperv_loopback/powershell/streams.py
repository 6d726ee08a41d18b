"""``[System.IO.File]::Open(path, mode, access, share)`` and the FileStream it returns, for reading only.

The subset (.NET ``System.IO.File.Open(String, FileMode, FileAccess, FileShare)`` and ``System.IO.FileStream``):
mode ``Open`` with access ``Read``; the stream's ``Length`` and ``Position``, ``Seek(offset, origin)``,
``Read(buffer, offset, count)`` (fills a ``byte[]`` in place, returns how many bytes it read, 0 at the end),
``Dispose()`` and ``Close()``. A file that is not there is the FileNotFoundException a .NET method call reports;
a directory is an UnauthorizedAccessException. The bytes come from the session (:class:`FileReader`): the language
knows no file system. Sharing (``FileShare``) is accepted and not enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import PipelineStopped, PSErrorRecord
from .syntax import Node, unsupported
from .values import to_ps_string

__all__ = ["FileReader", "FileStream", "method_error", "open_file"]


class FileReader(Protocol):
    """Where a script's file streams read from."""

    def read_file(self, path: str, offset: int, count: int) -> tuple[bytes, int]:
        """Return up to ``count`` bytes of the file from ``offset``, and the file's length. Raise FileNotFoundError
        when there is no such file, IsADirectoryError for a directory."""
        ...


def method_error(method: str, count: int, message: str, exception: str) -> PipelineStopped:
    """The record PowerShell writes when a .NET method throws: a MethodInvocationException whose error id is the
    inner exception's type name."""
    return PipelineStopped(
        PSErrorRecord(
            message=f'Exception calling "{method}" with "{count}" argument(s): "{message}"',
            category="NotSpecified",
            fully_qualified_error_id=exception,
            exception_type="System.Management.Automation.MethodInvocationException",
        )
    )


def open_file(files: FileReader | None, args: list[object], node: Node) -> FileStream:
    """``[System.IO.File]::Open(path, 'Open', 'Read'[, share])``."""
    if files is None or len(args) not in (3, 4):
        raise unsupported(node, "[System.IO.File]::Open with these arguments")
    path, mode, access = (to_ps_string(arg) for arg in args[:3])
    if mode.casefold() != "open" or access.casefold() != "read":
        raise unsupported(node, f"opening a file with mode {mode} and access {access} (this host reads only)")
    try:
        _data, length = files.read_file(path, 0, 0)
    except FileNotFoundError:
        raise method_error("Open", len(args), f"Could not find file '{path}'.", "FileNotFoundException") from None
    except IsADirectoryError:
        raise method_error(
            "Open", len(args), f"Access to the path '{path}' is denied.", "UnauthorizedAccessException"
        ) from None
    return FileStream(files, path, length)


@dataclass
class FileStream:
    """An open FileStream, reading."""

    files: FileReader
    path: str
    length: int
    position: int = 0
    closed: bool = False

    def member(self, low: str, node: Node) -> object:
        """``$stream.Length`` / ``$stream.Position``."""
        if self.closed:
            # A property getter that throws: PowerShell's GetValueInvocationException.
            raise PipelineStopped(
                PSErrorRecord(
                    message=f'Exception getting "{low.capitalize()}": "Cannot access a closed file."',
                    category="NotSpecified",
                    fully_qualified_error_id="ExceptionWhenGetting",
                    exception_type="System.Management.Automation.GetValueInvocationException",
                )
            )
        if low == "length":
            _data, self.length = self.files.read_file(self.path, 0, 0)
            return self.length
        if low == "position":
            return self.position
        raise unsupported(node, f"the FileStream member '{low}'")

    def call(self, low: str, args: list[object], node: Node) -> object:
        """``Seek``, ``Read``, ``Dispose``, ``Close``."""
        if low in {"dispose", "close"} and not args:
            self.closed = True
            return None
        self._check_open(low)
        if low == "seek" and len(args) == 2:
            origin = to_ps_string(args[1]).casefold()
            base = {"begin": 0, "current": self.position, "end": self.length}.get(origin)
            if base is None:
                raise unsupported(node, f"the SeekOrigin {origin}")
            target = base + int(args[0])  # type: ignore[call-overload]
            if target < 0:
                raise method_error(
                    "Seek",
                    2,
                    "An attempt was made to move the position before the beginning of the stream.",
                    "IOException",
                )
            self.position = target
            return target
        if low == "read" and len(args) == 3 and isinstance(args[0], bytearray):
            buffer, offset, count = args[0], int(args[1]), int(args[2])  # type: ignore[call-overload]
            if offset < 0 or count < 0 or offset + count > len(buffer):
                raise method_error(
                    "Read",
                    3,
                    "Offset and length were out of bounds for the array or count is greater than the "
                    "number of elements from index to the end of the source collection.",
                    "ArgumentException",
                )
            data, self.length = self.files.read_file(self.path, self.position, count)
            buffer[offset : offset + len(data)] = data
            self.position += len(data)
            return len(data)
        raise unsupported(node, f"the FileStream method '{low}' with {len(args)} argument(s)")

    def _check_open(self, method: str) -> None:
        if self.closed:
            raise method_error(method.capitalize(), 0, "Cannot access a closed file.", "ObjectDisposedException")
