"""The guests of ``memory://``: an echoing serial console, a few programs and a file system in memory.

* **Console**: what is written comes back, byte for byte, as a terminal in echo mode sends typed keys back. One
  console per VM: a second open is :class:`~polyvisor.errors.InUseError` unless ``force``, which ends the first
  stream (its reads return ``b""``); so does the VM leaving the running and paused states.
* **Programs** (``exec``): ``echo ARG...`` (the arguments joined by spaces, and a newline), ``printf FORMAT ARG...``
  (``%s``, ``%%`` and the escapes ``\\n \\t \\\\ \\0`` and ``\\NNN``; the format repeats while arguments remain, as
  the shell's does), ``cat [FILE...]`` (the files, or stdin), ``true``, ``false``, ``exit N`` (status N) and
  ``sleep SECONDS`` (real seconds; a command still running at the deadline is TimeoutError). Any other program
  is NotFoundError, as a program the guest agent cannot start is.
* **Files**: kept per VM in memory for its life; a file's directory must be ``/``, ``/tmp``, ``/root``, ``/etc``,
  ``/run``, ``/var`` or hold another file already.

No channel logs in (``guest-login`` is not declared), as libvirt's guest agent does not.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from polyvisor.backend import ConsoleChannel, Deadline
from polyvisor.errors import ConnectionLostError, InUseError, NotFoundError, TimeoutError, ValidationError
from polyvisor.guestexec import ExecResult, GuestCredentials
from polyvisor.model import PowerState
from polyvisor.testing.faults import Instrumented

__all__ = ["EchoConsole", "GuestPrimitives", "MemoryGuests"]

_DIRECTORIES = frozenset({"/", "/tmp", "/root", "/etc", "/run", "/var"})
_ESCAPES = {"n": b"\n", "t": b"\t", "\\": b"\\", "a": b"\a", "r": b"\r"}


class EchoConsole(ConsoleChannel):
    """A modelled serial console: every byte written is read back."""

    def __init__(self, release: Callable[[EchoConsole], None]) -> None:
        self._changed = threading.Condition()
        self._pending = bytearray()
        self._ended = False
        self._forget = release

    def read(self, max_bytes: int, timeout: float) -> bytes | None:
        with self._changed:
            self._changed.wait_for(lambda: self._pending or self._ended, timeout)
            if self._pending:
                out = bytes(self._pending[:max_bytes])
                del self._pending[:max_bytes]
                return out
            return b"" if self._ended else None

    def write(self, data: bytes, timeout: float) -> None:
        with self._changed:
            if self._ended:
                raise ConnectionLostError("the console stream ended; open a new one")
            self._pending += data
            self._changed.notify_all()

    def end(self) -> None:
        """End the stream (the VM stopped, or another client took the console)."""
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def close(self) -> None:
        self.end()
        self._forget(self)


class MemoryGuests:
    """The guests of one in-memory host: their consoles and files."""

    def __init__(self, host: str, lock: threading.RLock, names: Callable[[], Mapping[str, str]]) -> None:
        self._host = host
        self._lock = lock
        self._names = names  # uuid -> name of the host's VMs
        self._consoles: dict[str, EchoConsole] = {}
        self._files: dict[str, dict[str, bytes]] = {}

    def changed(self, uuid: str, state: PowerState | None) -> None:
        """A VM changed state (None: it was deleted): a console ends unless the VM still runs."""
        with self._lock:
            if state not in (PowerState.RUNNING, PowerState.PAUSED):
                console = self._consoles.pop(uuid, None)
                if console is not None:
                    console.end()
            if state is None:
                self._files.pop(uuid, None)

    def open_console(self, uuid: str, force: bool) -> EchoConsole:
        with self._lock:
            held = self._consoles.get(uuid)
            if held is not None and not force:
                raise InUseError(
                    "another client has this VM's serial console open; close it, or pass force=True to take it over",
                    users=(self._names().get(uuid, uuid),),
                    host=self._host,
                )
            if held is not None:
                held.end()

            def release(console: EchoConsole) -> None:
                with self._lock:
                    if self._consoles.get(uuid) is console:
                        del self._consoles[uuid]

            console = self._consoles[uuid] = EchoConsole(release)
            return console

    def open_consoles(self) -> int:
        """How many consoles are open on this host (for tests)."""
        with self._lock:
            return len(self._consoles)

    def run(self, uuid: str, argv: tuple[str, ...], stdin: bytes, deadline: Deadline) -> ExecResult:
        program, args = posixpath.basename(argv[0]), argv[1:]
        if program == "echo":
            return ExecResult(argv, 0, " ".join(args).encode("utf-8") + b"\n")
        if program == "printf":
            return ExecResult(argv, 0, _printf(args[0], args[1:])) if args else _usage(argv, "printf FORMAT")
        if program == "cat":
            return self._cat(uuid, argv, stdin)
        if program in ("true", "false"):
            return ExecResult(argv, 0 if program == "true" else 1)
        if program == "exit":
            return ExecResult(argv, int(args[0]) % 256) if args and args[0].isdigit() else _usage(argv, "exit N")
        if program == "sleep":
            return _sleep(argv, deadline, self._host)
        raise NotFoundError(f"no program {argv[0]!r} in the guest", host=self._host, vm=self._names().get(uuid))

    def _cat(self, uuid: str, argv: tuple[str, ...], stdin: bytes) -> ExecResult:
        if len(argv) == 1:
            return ExecResult(argv, 0, stdin)
        out, err, status = b"", b"", 0
        with self._lock:
            files = self._files.get(uuid, {})
            for path in argv[1:]:
                if path in files:
                    out += files[path]
                else:
                    err += f"cat: {path}: No such file or directory\n".encode()
                    status = 1
        return ExecResult(argv, status, out, err)

    def read_file(self, uuid: str, path: str, limit: int) -> bytes:
        with self._lock:
            data = self._files.get(uuid, {}).get(path)
        if data is None:
            raise NotFoundError(f"no file {path} in the guest", host=self._host, vm=self._names().get(uuid))
        if len(data) > limit:
            raise ValidationError(f"{path} holds {len(data)} bytes, more than the limit of {limit}", field="limit")
        return data

    def write_file(self, uuid: str, path: str, data: bytes) -> None:
        with self._lock:
            files = self._files.setdefault(uuid, {})
            parent = posixpath.dirname(path)
            if parent not in _DIRECTORIES and not any(posixpath.dirname(known) == parent for known in files):
                raise NotFoundError(
                    f"no directory {parent} in the guest; make it first (exec mkdir is not modelled: use /tmp)",
                    host=self._host,
                    vm=self._names().get(uuid),
                )
            files[path] = data


class _GuestHost(Protocol):
    guests: MemoryGuests


class GuestPrimitives(Instrumented):
    """The in-guest primitives of :class:`~polyvisor.testing.memory.MemoryBackend` (recorded, faults obeyed)."""

    host: _GuestHost

    def open_console(self, uuid: str, *, force: bool, deadline: Deadline) -> ConsoleChannel:
        return self.host.guests.open_console(uuid, force)

    def guest_exec(
        self, uuid: str, argv: tuple[str, ...], stdin: bytes, credentials: GuestCredentials | None, deadline: Deadline
    ) -> ExecResult:
        return self.host.guests.run(uuid, argv, stdin, deadline)

    def guest_read_file(
        self, uuid: str, path: str, limit: int, credentials: GuestCredentials | None, deadline: Deadline
    ) -> bytes:
        return self.host.guests.read_file(uuid, path, limit)

    def guest_write_file(
        self, uuid: str, path: str, data: bytes, credentials: GuestCredentials | None, deadline: Deadline
    ) -> None:
        self.host.guests.write_file(uuid, path, data)


def _usage(argv: tuple[str, ...], usage: str) -> ExecResult:
    return ExecResult(argv, 2, stderr=f"usage: {usage}\n".encode())


def _sleep(argv: tuple[str, ...], deadline: Deadline, host: str) -> ExecResult:
    try:
        seconds = float(argv[1])
    except (IndexError, ValueError):
        return _usage(argv, "sleep SECONDS")
    if seconds > deadline.remaining():
        time.sleep(deadline.remaining())
        raise TimeoutError(f"'sleep' was still running after {deadline.timeout:g}s; it runs on in the guest", host=host)
    time.sleep(seconds)
    return ExecResult(argv, 0)


def _printf(fmt: str, args: tuple[str, ...]) -> bytes:
    """The shell's printf for ``%s``, ``%%`` and backslash escapes; the format repeats while arguments remain."""
    out = bytearray()
    rest = list(args)
    while True:
        used = False
        i = 0
        while i < len(fmt):
            char = fmt[i]
            if char == "\\" and i + 1 < len(fmt):
                digits = ""
                while len(digits) < 3 and i + 1 + len(digits) < len(fmt) and fmt[i + 1 + len(digits)] in "01234567":
                    digits += fmt[i + 1 + len(digits)]
                if digits:
                    out.append(int(digits, 8) & 0xFF)
                    i += 1 + len(digits)
                    continue
                out += _ESCAPES.get(fmt[i + 1], ("\\" + fmt[i + 1]).encode("utf-8"))
                i += 2
                continue
            if char == "%" and i + 1 < len(fmt):
                if fmt[i + 1] == "s":
                    out += rest.pop(0).encode("utf-8") if rest else b""
                    used = True
                elif fmt[i + 1] == "%":
                    out += b"%"
                i += 2
                continue
            out += char.encode("utf-8")
            i += 1
        if not rest or not used:
            return bytes(out)
