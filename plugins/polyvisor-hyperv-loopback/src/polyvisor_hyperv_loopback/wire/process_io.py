"""Blocking stdin and collecting stdout/stderr for emulated WinRS processes."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class InputPipe(io.RawIOBase):
    """A process's stdin: reads block until WinRS Send delivers bytes or closes the stream.

    With ``console`` (the Command's WINRS_CONSOLEMODE_STDIN=TRUE) stdin is a console, not a pipe: a Send's End
    flag does not end it, so a read to end of input (``[Console]::In.ReadToEnd()``) waits until the process is
    ended from outside. ASSUMPTION: how Windows delivers Send data to console-mode stdin is not documented in
    MS-WSMV; clients that feed data on stdin (Ansible's winrm plugin) ask for pipe mode.
    """

    def __init__(self, changed: threading.Condition, console: bool = False) -> None:
        super().__init__()
        self._changed = changed
        self._buffer = bytearray()
        self._eof = False
        self.console = console

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes, end: bool) -> None:
        """Deliver bytes from a Send; ``end`` closes a pipe after them (a console stays open)."""
        with self._changed:
            self._buffer += data
            self._eof = self._eof or (end and not self.console)
            self._changed.notify_all()

    def end(self) -> None:
        """Close the stream (the reader sees end of file): the process is being ended."""
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._changed:
            while not self._buffer and not self._eof:
                self._changed.wait()
            count = min(len(view), len(self._buffer))
            view[:count] = self._buffer[:count]
            del self._buffer[:count]
            return count


class OutputPipe(io.RawIOBase):
    """A process's stdout or stderr: writes are kept until a WinRS Receive takes them."""

    def __init__(self, changed: threading.Condition) -> None:
        super().__init__()
        self._changed = changed
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        with self._changed:
            self._buffer += chunk
            self._changed.notify_all()
        return len(chunk)

    def pending(self) -> int:
        """Return how many bytes wait to be received."""
        with self._changed:
            return len(self._buffer)

    def take(self, limit: int) -> bytes:
        """Remove and return up to ``limit`` bytes."""
        with self._changed:
            chunk = bytes(self._buffer[:limit])
            del self._buffer[:limit]
            return chunk
