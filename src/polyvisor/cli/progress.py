"""A spinner line (or a transfer's progress bar) on stderr while a long operation runs, shown only when stderr is a
terminal.

Feed it from the ``progress=`` callbacks of :meth:`polyvisor.VM.wait_for` and :meth:`polyvisor.VM.ensure`; when the
stream is not a terminal (a pipe, a file, a test) it writes nothing at all, so output stays clean for scripts.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self, TextIO

from polyvisor.storage import TransferProgress

__all__ = ["Spinner", "TransferBar"]

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ASCII_FRAMES = "|/-\\"
_CLEAR = "\r\x1b[K"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class Spinner:
    """A context manager animating ``message`` on ``stream``; :meth:`update` changes the message."""

    def __init__(self, stream: TextIO, message: str, *, interval: float = 0.1) -> None:
        self._stream = stream
        self._message = message
        self._interval = interval
        self.enabled = _is_tty(stream)
        encoding = (getattr(stream, "encoding", None) or "ascii").lower()
        self._frames = _FRAMES if encoding.startswith("utf") else _ASCII_FRAMES
        self._frame = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        if self.enabled:
            self._draw()
            self._thread = threading.Thread(target=self._spin, name="polyvisor-spinner", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            with self._lock:
                self._stream.write(_CLEAR)
                self._stream.flush()

    def update(self, message: str) -> None:
        """Show ``message`` from now on (a ``progress=`` callback)."""
        with self._lock:
            self._message = message
        if self.enabled:
            self._draw()

    def _spin(self) -> None:
        while not self._stop.wait(self._interval):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            frame = self._frames[self._frame % len(self._frames)]
            self._frame += 1
            self._stream.write(f"{_CLEAR}{frame} {self._message}")
            self._stream.flush()


class TransferBar:
    """A progress bar of an upload or download: feed it as the ``progress=`` callback; :meth:`close` ends its line.

    ``[#####     ]  52%  104.0 of 200.0 MiB (31.2 MiB sent)``: holes of a sparse image count as done, not as sent.
    """

    def __init__(self, stream: TextIO, label: str, *, width: int = 30) -> None:
        self._stream = stream
        self._label = label
        self._width = width
        self.enabled = _is_tty(stream)
        self.last: TransferProgress | None = None

    def __call__(self, progress: TransferProgress) -> None:
        self.last = progress
        if not self.enabled:
            return
        filled = int(self._width * min(progress.fraction, 1.0))
        mib = 1024 * 1024
        bar = "#" * filled + " " * (self._width - filled)
        self._stream.write(
            f"{_CLEAR}{self._label} [{bar}] {progress.fraction:4.0%}  {progress.done / mib:.1f} of "
            f"{progress.total / mib:.1f} MiB ({progress.sent / mib:.1f} MiB sent)"
        )
        self._stream.flush()

    def close(self) -> None:
        """Clear the bar's line (the command prints its result after it)."""
        if self.enabled and self.last is not None:
            self._stream.write(_CLEAR)
            self._stream.flush()
