"""Blocking stdin and collecting stdout/stderr for emulated WinRS processes."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class InputPipe(io.RawIOBase):
    """A process's stdin: reads block until WinRS Send delivers bytes or closes the stream."""

    def __init__(self, changed: threading.Condition) -> None:
        super().__init__()
        self._changed = changed
        self._buffer = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes, end: bool) -> None:
        """Deliver bytes from a Send; ``end`` closes the stream after them."""
        with self._changed:
            self._buffer += data
            self._eof = self._eof or end
            self._changed.notify_all()

    def end(self) -> None:
        """Close the stream (the reader sees end of file)."""
        self.feed(b"", end=True)

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
