"""Inside a VM's guest: its serial console, commands and files (the part of :class:`polyvisor.VM` that reaches
past the hypervisor into the running guest).

Each call is a step of the verb engine (:mod:`polyvisor.verbs.inguest`), so the asyncio face keeps the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvisor import blocking
from polyvisor.console import Console
from polyvisor.guestexec import MAX_FILE_BYTES, ExecResult, GuestCredentials
from polyvisor.handle import VMHandle
from polyvisor.verbs import inguest
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

__all__ = ["EXEC_TIMEOUT", "InGuestOps"]

EXEC_TIMEOUT = 60.0
"""How long :meth:`polyvisor.VM.exec` waits for a command to end unless told."""


class InGuestOps(VMHandle):
    """The serial console, commands and files of one VM's guest."""

    def console(self, *, force: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Console:
        """Open the guest's serial console as a byte stream both ways; use it in a ``with`` block.

        The VM must be running or paused. One console per VM at a time: another open one is
        :class:`~polyvisor.errors.InUseError` unless ``force`` takes it over (its stream then ends).
        """
        channel = blocking.run(self, inguest.open_console(self, force, timeout))
        return Console(channel, host=self.connection.host, vm=self.seen_name, clock=self.connection.clock)

    def exec(
        self,
        argv: Sequence[str | bytes],
        *,
        input: bytes | str | None = None,  # noqa: A002  # subprocess.run's name for the same thing
        credentials: GuestCredentials | None = None,
        timeout: float = EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run ``argv`` in the guest, feeding it ``input``, and return its exit code, stdout and stderr (bytes).

        ``argv`` reaches the guest's process as a list, never joined into shell text; each argument must be UTF-8
        without NUL (see :mod:`polyvisor.guestexec`). A command still running at ``timeout`` raises
        :class:`~polyvisor.errors.TimeoutError`. ``credentials`` log into the guest where the channel does
        (feature ``guest-login``: Hyper-V) and are refused where it cannot (libvirt's guest agent runs as root).
        """
        return blocking.run(self, inguest.exec_command(self, argv, input, credentials, timeout))

    def read_file(
        self,
        path: str,
        *,
        credentials: GuestCredentials | None = None,
        limit: int = MAX_FILE_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bytes:
        """Return the bytes of the guest's file at ``path`` (absolute); more than ``limit`` bytes is refused."""
        return blocking.run(self, inguest.read_file(self, path, credentials, limit, timeout))

    def write_file(
        self,
        path: str,
        data: bytes | str,
        *,
        credentials: GuestCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Write ``data`` (a str as UTF-8) to the guest's file at ``path``, replacing it; its directory must exist."""
        blocking.run(self, inguest.write_file(self, path, data, credentials, timeout))
