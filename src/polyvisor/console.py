"""A guest's serial console as a byte stream both ways: what a backend opens, and what :meth:`polyvisor.VM.console`
returns.

A backend opens a :class:`~polyvisor.backend.ConsoleChannel` (libvirt: ``virDomainOpenConsole`` on a stream;
Hyper-V: the COM port's named pipe through a PowerShell pipeline; ``memory://``: an echo). :class:`Console` wraps
it for the caller: reads bounded by a timeout, a buffer for :meth:`Console.read_until`, a close that always
releases the channel (also when the block of a ``with`` fails). One console per VM at a time: a second open is
refused unless ``force`` takes the console over, which ends the first one's stream.
"""

from __future__ import annotations

import threading
from types import TracebackType

from polyvisor.backend import SYSTEM_CLOCK, Clock, ConsoleChannel, validate_timeout
from polyvisor.errors import ConnectionLostError, TimeoutError, ValidationError

__all__ = ["READ_CHUNK", "READ_TIMEOUT", "Console"]

READ_CHUNK = 65536
"""The most one :meth:`Console.read` returns unless told."""
READ_TIMEOUT = 10.0
"""How long a read waits for bytes unless told."""


class Console:
    """The serial console of one VM, open; use it in a ``with`` block, or :meth:`close` it."""

    def __init__(self, channel: ConsoleChannel, *, host: str, vm: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._channel = channel
        self._clock = clock
        self.host = host
        self.vm = vm
        self._buffer = b""
        self._ended = False
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ended" if self._ended else "open"
        return f"<polyvisor.Console of {self.vm!r} on {self.host} ({state})>"

    def __enter__(self) -> Console:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def ended(self) -> bool:
        """Whether the stream ended (a read returned ``b""``): the VM stopped or another client took the console."""
        return self._ended and not self._buffer

    def read(self, max_bytes: int = READ_CHUNK, *, timeout: float = READ_TIMEOUT) -> bytes:
        """Return the bytes that arrived (at most ``max_bytes``), waiting up to ``timeout`` for the first one.

        ``b""`` means the stream ended; nothing within ``timeout`` raises :class:`~polyvisor.errors.TimeoutError`.
        """
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValidationError(f"must be a positive int, got {max_bytes!r}", field="max_bytes")
        validate_timeout(timeout)
        self._check_open()
        if self._buffer:
            out, self._buffer = self._buffer[:max_bytes], self._buffer[max_bytes:]
            return out
        if self._ended:
            return b""
        data = self._channel.read(max_bytes, timeout)
        if data is None:
            raise TimeoutError(f"the console sent nothing within {timeout:g}s", host=self.host, vm=self.vm)
        if not data:
            self._ended = True
        return data

    def read_until(self, marker: bytes | str, *, timeout: float = READ_TIMEOUT) -> bytes:
        """Read until ``marker`` arrived; return everything up to and including it (the rest stays buffered).

        Raises :class:`~polyvisor.errors.TimeoutError` (saying what did arrive) if it does not come within
        ``timeout``, and :class:`~polyvisor.errors.ConnectionLostError` if the stream ends first.
        """
        wanted = marker.encode("utf-8") if isinstance(marker, str) else bytes(marker)
        if not wanted:
            raise ValidationError("must not be empty", field="marker")
        validate_timeout(timeout)
        self._check_open()
        ends = self._clock.monotonic() + timeout
        seen = self._buffer
        self._buffer = b""
        while (at := seen.find(wanted)) < 0:
            left = ends - self._clock.monotonic()
            data = None if left <= 0 or self._ended else self._channel.read(READ_CHUNK, left)
            if data is None or not data:
                self._buffer = seen  # nothing is lost: a later read returns it
                if data is not None or self._ended:
                    self._ended = True
                    raise ConnectionLostError(
                        f"the console ended before {wanted!r} arrived; it sent {seen[-200:]!r}",
                        host=self.host,
                        vm=self.vm,
                    )
                raise TimeoutError(
                    f"{wanted!r} did not arrive on the console within {timeout:g}s; the last bytes were "
                    f"{seen[-200:]!r}",
                    host=self.host,
                    vm=self.vm,
                )
            seen += data
        end = at + len(wanted)
        self._buffer = seen[end:]
        return seen[:end]

    def write(self, data: bytes | str, *, timeout: float = READ_TIMEOUT) -> None:
        """Send ``data`` (a str as UTF-8) to the guest's console, as keys typed there."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        validate_timeout(timeout)
        self._check_open()
        if self._ended:
            raise ConnectionLostError(
                "the console stream ended (the VM stopped, or another client took the console); open a new one",
                host=self.host,
                vm=self.vm,
            )
        if payload:
            self._channel.write(payload, timeout)

    def close(self) -> None:
        """Release the console (and its descriptors); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._channel.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValidationError("this console is closed; open a new one with vm.console()", field="console")
