"""Start the loopback host as a process of its own and wait until it serves: for test suites, nox and benchmarks.

:func:`start_host` runs ``python -m polyvisor_hyperv_loopback`` with the options given plus ``--ready-file``, and
returns once the host has written that file (the host writes it atomically, once every listener serves). A host that
exits first, or does not get there within the timeout, raises :class:`HostDidNotStart` with what the host wrote on
stderr. :func:`spawn_host` starts the process without waiting, so that several hosts start at once;
:meth:`HostProcess.wait_ready` then waits for each.

The host's stderr is read as it comes (so a chatty host never blocks on a full pipe), kept for the error and for
:meth:`HostProcess.stderr`, and passed on to this process's stderr unless ``echo_stderr`` is false.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["READY_TIMEOUT", "HostDidNotStart", "HostDidNotStop", "HostProcess", "spawn_host", "start_host"]

READY_TIMEOUT = 60.0
"""Seconds a host gets to write its ready file, by default (a cold start under load takes a few)."""

_POLL_INTERVAL = 0.05

_STACKS_WAIT = 1.0  # seconds a hung host gets to write its threads' stacks before it is killed


class HostDidNotStart(RuntimeError):
    """The host exited before writing its ready file, or did not write it in time; the message quotes its stderr."""


class HostDidNotStop(RuntimeError):
    """The host did not exit within the timeout after SIGTERM; it has been killed."""


class HostProcess:
    """A loopback host process: :attr:`process`, and once :meth:`wait_ready` returned, :attr:`ready` (the ready
    file's JSON: ``username``, ``password_env`` and ``endpoints``, each with ``scheme``, ``url``, ``host``, ``port``
    and ``ca_path``)."""

    def __init__(self, process: subprocess.Popen[bytes], ready_file: Path, *, echo_stderr: bool) -> None:
        self.process = process
        self.ready_file = ready_file
        self.ready: dict[str, Any] = {}
        self._stderr = bytearray()
        self._lock = threading.Lock()
        self._echo = echo_stderr
        self._terminated = False
        self._reader = threading.Thread(target=self._read_stderr, name="loopback-host-stderr", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in iter(stream.readline, b""):
            with self._lock:
                self._stderr += line
            if self._echo:
                sys.stderr.write(line.decode("utf-8", "replace"))
                sys.stderr.flush()
        stream.close()

    def stderr(self) -> str:
        """What the host has written on stderr so far (all of it, once the process has exited and been waited)."""
        with self._lock:
            return self._stderr.decode("utf-8", "replace")

    @property
    def endpoints(self) -> dict[str, dict[str, Any]]:
        """The ready file's endpoints by scheme (``http``, ``https``)."""
        return {endpoint["scheme"]: endpoint for endpoint in self.ready.get("endpoints", [])}

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Wait until the host has written its ready file; return (and keep in :attr:`ready`) what it holds.

        Raises :class:`HostDidNotStart` if the process exits first, or if ``timeout`` seconds pass (the process is
        then stopped).
        """
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                self._reader.join()
                raise HostDidNotStart(
                    f"the loopback Hyper-V host exited with code {self.process.returncode} before writing "
                    f"{self.ready_file}; its stderr:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                with contextlib.suppress(HostDidNotStop):
                    self.stop()
                raise HostDidNotStart(
                    f"the loopback Hyper-V host did not write {self.ready_file} within {timeout:g} s; "
                    f"its stderr:\n{self.stderr()}"
                )
            time.sleep(_POLL_INTERVAL)  # another process's file: there is no event to await
        self.ready = json.loads(self.ready_file.read_text(encoding="utf-8"))
        return self.ready

    def terminate(self) -> None:
        """Send SIGTERM (the host closes its listeners and exits 0) without waiting; once only, because a second
        one could reach the exiting interpreter after it restored the default action, and kill it."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the host and wait until it has exited; return its exit code.

        A host still running after ``timeout`` seconds is killed, and :class:`HostDidNotStop` raised with its
        stderr, which holds the stacks of its threads at that moment.
        """
        self.terminate()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Ask for every thread's stack first (the host registers faulthandler on SIGUSR1), so the error says
            # where it hung.
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=_STACKS_WAIT)
            self.process.kill()
            self.process.wait()
            self._reader.join()
            raise HostDidNotStop(
                f"the loopback Hyper-V host did not exit within {timeout:g} s of SIGTERM and was killed; "
                f"its stderr:\n{self.stderr()}"
            ) from None
        self._reader.join()
        return code

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def spawn_host(
    options: Sequence[str] = (),
    *,
    ready_file: Path,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    echo_stderr: bool = True,
) -> HostProcess:
    """Start ``command`` (default: this Python with ``-m polyvisor_hyperv_loopback``) with ``options`` and
    ``--ready-file ready_file``; return at once. A ready file left by an earlier run is removed first.

    ``env`` is the whole environment of the host (default: this process's), so it carries the password variable;
    ``stdout`` is passed to :class:`subprocess.Popen` (the host prints its endpoints there).
    """
    ready_file.unlink(missing_ok=True)
    argv = [
        *(command or (sys.executable, "-m", "polyvisor_hyperv_loopback")),
        *options,
        "--ready-file",
        str(ready_file),
    ]
    process = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    return HostProcess(process, ready_file, echo_stderr=echo_stderr)


def start_host(
    options: Sequence[str] = (),
    *,
    ready_file: Path,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    echo_stderr: bool = True,
    timeout: float = READY_TIMEOUT,
) -> HostProcess:
    """:func:`spawn_host`, then :meth:`HostProcess.wait_ready`: return a host that serves, with its ready file
    read. Stop it with :meth:`HostProcess.stop` (or use it as a context manager)."""
    host = spawn_host(options, ready_file=ready_file, command=command, env=env, stdout=stdout, echo_stderr=echo_stderr)
    host.wait_ready(timeout)
    return host
