"""Commands and files in a guest, through the QEMU guest agent (``libvirt_qemu.qemuAgentCommand``).

A command is ``guest-exec`` with ``path`` (argv[0], looked up on the agent's PATH), ``arg`` (the rest, a JSON list:
nothing is ever joined into shell text), ``input-data`` (stdin, base64) and ``capture-output``; the agent answers
with a pid at once, and ``guest-exec-status`` is polled (50 ms, doubling up to 0.5 s) until it says ``exited``,
within the call's deadline. Output comes back base64: any bytes arrive as the process wrote them; the agent keeps
at most 16 MiB of each stream and says when it cut one (``out-truncated``). The agent has no way to stop a
process, so a command still running at the deadline keeps running, and the TimeoutError says so with its pid.

Stdin is at most :data:`STDIN_LIMIT` bytes (more is refused before anything is sent). Files: ``guest-file-open`` /
``-read`` / ``-write`` / ``-close``, in 64 KiB pieces. The agent runs as root and cannot log in as anyone else (no
``guest-login``). Agent requests travel on the client's side connection, so a slow guest stalls no other call.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any

import libvirt
import libvirt_qemu

from polyvisor.backend import Deadline
from polyvisor.errors import NotFoundError, TimeoutError, UnsupportedError, ValidationError
from polyvisor.guestexec import ExecResult
from polyvisor.model import Feature
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["GuestAgent"]

# One guest-file-read/-write moves at most this much: a write request of 1 MiB (1.4 MB of JSON) went unanswered by
# Debian 12's qemu-guest-agent under TCG for 30 s, and the agent then refused every request ("not available for
# now") until libvirt resynchronized; 100 KB took 0.12 s.
_PIECE = 64 * 1024
# The most stdin one guest-exec carries: 256 KiB of input-data took 0.16 s, 384 KiB went unanswered for 30 s and
# the agent's channel then refused every request until libvirt resynchronized (Debian 12's qemu-guest-agent, TCG).
STDIN_LIMIT = 128 * 1024
_FIRST_POLL, _LAST_POLL = 0.05, 0.5
_AGENT_LONGEST = 30  # seconds one agent request may take, within the call's deadline
_MISSING = ("No such file or directory", "not found")


class GuestAgent:
    """Guest-agent commands and file copies for domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def guest_exec(self, uuid: str, argv: tuple[str, ...], stdin: bytes, deadline: Deadline) -> ExecResult:
        """Start ``argv`` and poll its status until it exits; return its exit status and output."""
        if len(stdin) > STDIN_LIMIT:
            raise ValidationError(
                f"holds {len(stdin)} bytes; the QEMU guest agent takes at most {STDIN_LIMIT} bytes of stdin in one "
                "command (a larger one stalls its channel): write the data to a file in the guest (write_file) and "
                "have the command read it",
                field="input",
            )
        dom = self._domain(uuid)
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin:
            arguments["input-data"] = base64.b64encode(stdin).decode("ascii")
        doing = f"starting {argv[0]!r} in the guest"
        pid = self._command(dom, deadline, doing, "guest-exec", arguments)["pid"]
        pause = _FIRST_POLL
        while True:
            status = self._command(
                dom, deadline, f"waiting for {argv[0]!r} (pid {pid})", "guest-exec-status", {"pid": pid}
            )
            if status.get("exited"):
                return ExecResult(
                    argv,
                    status.get("exitcode") if "signal" not in status else None,
                    base64.b64decode(status.get("out-data", "")),
                    base64.b64decode(status.get("err-data", "")),
                    signal=status.get("signal"),
                    truncated=bool(status.get("out-truncated") or status.get("err-truncated")),
                )
            if deadline.remaining() <= pause:
                raise TimeoutError(
                    f"{argv[0]!r} was still running in the guest after {deadline.timeout:g}s; the guest agent cannot "
                    f"stop it, so it runs on (pid {pid})",
                    host=self._client.host,
                    vm=dom.name(),
                )
            time.sleep(pause)
            pause = min(pause * 2, _LAST_POLL)

    def guest_read_file(self, uuid: str, path: str, limit: int, deadline: Deadline) -> bytes:
        """The file's bytes, read in pieces; more than ``limit`` is refused."""
        dom = self._domain(uuid)
        handle = self._command(dom, deadline, f"opening {path}", "guest-file-open", {"path": path, "mode": "rb"})
        data = bytearray()
        try:
            while True:
                piece = self._command(
                    dom, deadline, f"reading {path}", "guest-file-read", {"handle": handle, "count": _PIECE}
                )
                data += base64.b64decode(piece.get("buf-b64", ""))
                if len(data) > limit:
                    raise ValidationError(f"{path} holds more than the limit of {limit} bytes", field="limit")
                if piece.get("eof") or not piece.get("count"):
                    return bytes(data)
        finally:
            self._close(dom, handle, deadline)

    def guest_write_file(self, uuid: str, path: str, data: bytes, deadline: Deadline) -> None:
        """Write the file in pieces (truncating it first)."""
        dom = self._domain(uuid)
        handle = self._command(dom, deadline, f"opening {path}", "guest-file-open", {"path": path, "mode": "wb"})
        try:
            for start in range(0, len(data), _PIECE):
                piece = data[start : start + _PIECE]
                arguments = {"handle": handle, "buf-b64": base64.b64encode(piece).decode("ascii"), "count": len(piece)}
                written = self._command(dom, deadline, f"writing {path}", "guest-file-write", arguments)
                if written.get("count") != len(piece):
                    raise ValidationError(
                        f"the guest agent wrote {written.get('count')} of {len(piece)} bytes to {path}: is its file "
                        "system full?",
                        field="data",
                    )
            self._command(dom, deadline, f"writing {path}", "guest-file-flush", {"handle": handle})
        finally:
            self._close(dom, handle, deadline)

    def _domain(self, uuid: str) -> libvirt.virDomain:
        if not self._client.definition(self._client.domain(uuid), fresh=False).guest_agent:
            raise UnsupportedError(
                "this VM has no guest agent channel (org.qemu.guest_agent.0); define it with one and run "
                "qemu-guest-agent in the guest",
                feature=Feature.GUEST_EXEC,
                host=self._client.host,
                vm=uuid,
            )
        return self._client.side_domain(uuid)

    def _close(self, dom: libvirt.virDomain, handle: int, deadline: Deadline) -> None:
        # A handle left open is the agent's to reclaim; the error that ended the copy says more.
        with contextlib.suppress(Exception):
            self._command(dom, deadline.extended(1.0), "closing a file", "guest-file-close", {"handle": handle})

    def _command(self, dom: libvirt.virDomain, deadline: Deadline, doing: str, execute: str, arguments: Any) -> Any:
        deadline.check(doing, host=self._client.host, vm=dom.name())
        seconds = max(1, min(_AGENT_LONGEST, int(deadline.remaining() + 0.999)))
        request = json.dumps({"execute": execute, "arguments": arguments})
        with self._client.errors(doing, host=self._client.host, vm=dom.name()):
            try:
                reply = libvirt_qemu.qemuAgentCommand(dom, request, seconds, 0)
            except libvirt.libvirtError as error:
                message = error.get_error_message() or str(error)
                if execute in ("guest-exec", "guest-file-open") and any(m in message for m in _MISSING):
                    what = arguments.get("path")
                    raise NotFoundError(
                        f"no {'program' if execute == 'guest-exec' else 'file'} {what!r} in the guest "
                        f"(the guest agent said: {message})",
                        host=self._client.host,
                        vm=dom.name(),
                    ) from error
                if "has been disabled" in message:
                    raise UnsupportedError(
                        f"the guest agent refuses {execute} ({message}); allow it in qemu-guest-agent's "
                        "configuration (--allow-rpcs / --block-rpcs)",
                        feature=Feature.GUEST_FILES if execute.startswith("guest-file") else Feature.GUEST_EXEC,
                        host=self._client.host,
                        vm=dom.name(),
                    ) from error
                raise
        return json.loads(reply)["return"]
