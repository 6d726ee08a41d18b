"""The backend's in-guest primitives, a part of the facade kept apart so that it stays a facade: the serial
console (:mod:`.console`), commands and files (:mod:`.guest_agent`)."""

from __future__ import annotations

from polyvisor.backend import Backend, ConsoleChannel, Deadline
from polyvisor.guestexec import ExecResult, GuestCredentials
from polyvisor_libvirt.bounded import JOB_GRACE, CallPool, bounded
from polyvisor_libvirt.console import Consoles
from polyvisor_libvirt.guest_agent import GuestAgent

__all__ = ["InGuestPrimitives"]


class InGuestPrimitives(Backend):
    """Consoles, commands and files of the domains of one connection (a base of :class:`.LibvirtBackend`)."""

    host: str
    _calls: CallPool
    _consoles: Consoles
    _agent: GuestAgent

    @bounded("opening the serial console")
    def open_console(self, uuid: str, *, force: bool, deadline: Deadline) -> ConsoleChannel:
        """virDomainOpenConsole on a non-blocking stream fed by libvirt's event loop."""
        return self._consoles.open_console(uuid, force=force, deadline=deadline)

    @bounded("running a command in the guest", grace=JOB_GRACE)
    def guest_exec(
        self, uuid: str, argv: tuple[str, ...], stdin: bytes, credentials: GuestCredentials | None, deadline: Deadline
    ) -> ExecResult:
        """guest-exec, then guest-exec-status until the process exits."""
        return self._agent.guest_exec(uuid, argv, stdin, deadline)

    @bounded("reading a file in the guest", grace=JOB_GRACE)
    def guest_read_file(
        self, uuid: str, path: str, limit: int, credentials: GuestCredentials | None, deadline: Deadline
    ) -> bytes:
        """guest-file-open and guest-file-read."""
        return self._agent.guest_read_file(uuid, path, limit, deadline)

    @bounded("writing a file in the guest", grace=JOB_GRACE)
    def guest_write_file(
        self, uuid: str, path: str, data: bytes, credentials: GuestCredentials | None, deadline: Deadline
    ) -> None:
        """guest-file-open and guest-file-write."""
        self._agent.guest_write_file(uuid, path, data, deadline)
