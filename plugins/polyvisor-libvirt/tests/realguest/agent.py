"""Read a running guest through its QEMU guest agent (libvirt_qemu.qemuAgentCommand): files, commands, cloud-init.

Test support, not product API: the tests look inside a guest with it to prove what real components did there (the
files cloud-init wrote, the hostname it set, what it reported). The guest must run qemu-guest-agent with guest-exec
and the guest-file-* commands allowed (Debian's package allows every command).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polyvisor.testing import eventually

if TYPE_CHECKING:
    import libvirt

CLOUD_INIT_RESULT = "/run/cloud-init/result.json"
"""Written by cloud-init's final stage, once it has finished: ``{"v1": {"datasource": ..., "errors": [...]}}``."""
CLOUD_INIT_STATUS = "/run/cloud-init/status.json"
"""Each stage's start, finish and errors."""


class AgentError(AssertionError):
    """The guest agent answered with an error (a missing file, a refused command): the guest is not as expected."""


@dataclass(frozen=True)
class Exec:
    """A finished guest-exec: its exit code (None when a signal ended it) and its output."""

    argv: tuple[str, ...]
    exitcode: int | None
    stdout: str
    stderr: str

    def check(self) -> str:
        """Return stdout; fail naming the command and its output unless it exited 0."""
        if self.exitcode != 0:
            raise AssertionError(f"{' '.join(self.argv)} exited {self.exitcode}: {self.stderr or self.stdout}")
        return self.stdout


class GuestAgent:
    """The guest agent of one libvirt domain."""

    def __init__(self, dom: libvirt.virDomain) -> None:
        self.dom = dom

    def command(self, execute: str, arguments: dict[str, Any] | None = None, timeout: int = 10) -> Any:
        """Run one agent command; return its ``return`` member. An agent error is an :class:`AgentError`."""
        import libvirt
        import libvirt_qemu

        request: dict[str, Any] = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        try:
            reply = libvirt_qemu.qemuAgentCommand(self.dom, json.dumps(request), timeout, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_AGENT_UNRESPONSIVE:
                raise  # not connected (yet): no answer about the guest
            raise AgentError(f"{execute} in {self.dom.name()}: {error}") from None
        return json.loads(reply)["return"]

    def answers(self) -> bool:
        """Return whether the agent answers guest-ping now."""
        import libvirt

        try:
            self.command("guest-ping", timeout=2)
        except libvirt.libvirtError:
            return False
        return True

    def read_file(self, path: str) -> bytes:
        """The whole file at ``path`` in the guest (an :class:`AgentError` when it cannot be opened)."""
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        data = b""
        try:
            while True:
                chunk = self.command("guest-file-read", {"handle": handle, "count": 1 << 20})
                data += base64.b64decode(chunk["buf-b64"])
                if chunk["eof"]:
                    return data
        finally:
            self.command("guest-file-close", {"handle": handle})

    def exists(self, path: str) -> bool:
        """Return whether ``path`` can be opened for reading in the guest."""
        try:
            handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        except AgentError:
            return False
        self.command("guest-file-close", {"handle": handle})
        return True

    def run(self, *argv: str, timeout: float = 60.0) -> Exec:
        """Run ``argv`` in the guest (no shell: each word is one argument) and wait for it to finish."""
        started = self.command("guest-exec", {"path": argv[0], "arg": list(argv[1:]), "capture-output": True})

        def finished() -> dict[str, Any] | None:
            status: dict[str, Any] = self.command("guest-exec-status", {"pid": started["pid"]})
            return status if status["exited"] else None

        status = eventually(finished, timeout=timeout, what=f"{' '.join(argv)} in {self.dom.name()}", interval=0.2)
        return Exec(
            argv=tuple(argv),
            exitcode=status.get("exitcode"),
            stdout=base64.b64decode(status.get("out-data", "")).decode(errors="replace"),
            stderr=base64.b64decode(status.get("err-data", "")).decode(errors="replace"),
        )


def cloud_init_finished(agent: GuestAgent) -> dict[str, Any] | None:
    """cloud-init's result.json once its final stage has written it, else None (also while the agent is away)."""
    import libvirt

    try:
        return dict(json.loads(agent.read_file(CLOUD_INIT_RESULT)))
    except (AgentError, libvirt.libvirtError):
        return None


def wait_for_cloud_init(agent: GuestAgent, timeout: float, *, console: Any = None) -> tuple[dict[str, Any], float]:
    """Wait until cloud-init has finished in the guest; return its result.json and the seconds waited.

    ``console`` (a callable returning the console output) adds the console's tail to a timeout's message.
    """
    started = time.monotonic()
    try:
        result = eventually(
            lambda: cloud_init_finished(agent),
            timeout=timeout,
            what=f"cloud-init to finish in {agent.dom.name()} ({CLOUD_INIT_RESULT} through the guest agent)",
            interval=1.0,
        )
    except AssertionError as error:
        tail = console()[-3000:] if console is not None else "(no console)"
        raise AssertionError(f"{error}; console tail:\n{tail}") from None
    return result, time.monotonic() - started
