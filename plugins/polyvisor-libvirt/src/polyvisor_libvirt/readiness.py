"""Whether a guest finished initializing: cloud-init's run files, read through the QEMU guest agent.

cloud-init writes ``/run/cloud-init/result.json`` when its last stage ends, and keeps ``status.json`` while it runs.
The ``cloud-init`` source opens them with the agent's ``guest-file-open``/``guest-file-read`` (through
``libvirt_qemu.qemuAgentCommand``), read-only: nothing runs in the guest. A VM without an agent channel cannot
answer (``unavailable``); an agent not connected yet, or no result file yet, is an answer to wait on.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import libvirt
import libvirt_qemu

from polyvisor.backend import Deadline
from polyvisor.model import ReadyAnswer
from polyvisor.provisioning.readiness import (
    CLOUD_INIT_RESULT,
    CLOUD_INIT_SOURCE,
    CLOUD_INIT_STATUS,
    cloud_init_answer,
)
from polyvisor_libvirt.addresses import agent_detail
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["SOURCES", "Readiness"]

SOURCES = (CLOUD_INIT_SOURCE,)
_CHUNK = 65536
_MOST = 1024 * 1024  # cloud-init's files are a few hundred bytes; never read without end
_AGENT_LONGEST = 5  # seconds one agent command may take, within the wait's deadline


class _Missing(Exception):
    """The file does not exist in the guest."""


class _Unavailable(Exception):
    """The agent can never read the file for this VM."""


class Readiness:
    """Readiness answers of domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def ready_answers(self, uuid: str, sources: Sequence[str], deadline: Deadline) -> list[ReadyAnswer]:
        """One answer per source; only ``cloud-init`` is libvirt's."""
        return [
            self._cloud_init(uuid, deadline)
            if source == CLOUD_INIT_SOURCE
            else ReadyAnswer(source, detail="libvirt has no such source", unavailable=True)
            for source in sources
        ]

    def _cloud_init(self, uuid: str, deadline: Deadline) -> ReadyAnswer:
        dom = self._client.domain(uuid)
        if not self._client.definition(dom, fresh=False).guest_agent:
            return ReadyAnswer(
                CLOUD_INIT_SOURCE,
                detail="agent not configured: the VM has no guest agent channel (org.qemu.guest_agent.0)",
                unavailable=True,
            )
        # Agent commands travel on a connection of their own: one the guest is slow to answer stalls no other call.
        side = self._client.side_domain(uuid)
        try:
            result = self._read(side, CLOUD_INIT_RESULT, deadline)
            status = None if result is not None else self._read(side, CLOUD_INIT_STATUS, deadline)
        except _Unavailable as refused:
            return ReadyAnswer(CLOUD_INIT_SOURCE, detail=str(refused), unavailable=True)
        except libvirt.libvirtError as error:
            return ReadyAnswer(CLOUD_INIT_SOURCE, detail=self._agent_failed(error))
        return cloud_init_answer(result, status)

    def _read(self, dom: libvirt.virDomain, path: str, deadline: Deadline) -> bytes | None:
        """The file's bytes, read through the agent; None if it does not exist."""
        try:
            handle = self._agent(dom, deadline, "guest-file-open", path=path, mode="r")
        except _Missing:
            return None
        data = b""
        try:
            while len(data) < _MOST:
                chunk = self._agent(dom, deadline, "guest-file-read", handle=handle, count=_CHUNK)
                data += base64.b64decode(chunk.get("buf-b64", ""))
                if chunk.get("eof") or not chunk.get("count"):
                    break
        finally:
            # A handle left open is the agent's to reclaim; what was read is the answer.
            with contextlib.suppress(libvirt.libvirtError, _Missing, _Unavailable):
                self._agent(dom, deadline, "guest-file-close", handle=handle)
        return data

    def _agent(self, dom: libvirt.virDomain, deadline: Deadline, execute: str, **arguments: Any) -> Any:
        seconds = max(1, min(_AGENT_LONGEST, int(deadline.remaining() + 0.999)))
        command = json.dumps({"execute": execute, "arguments": arguments})
        try:
            reply = libvirt_qemu.qemuAgentCommand(dom, command, seconds, 0)
        except libvirt.libvirtError as error:
            message = error.get_error_message() or str(error)
            if "No such file or directory" in message:
                raise _Missing from None
            if "has been disabled" in message or error.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                raise _Unavailable(
                    f"the guest agent refuses {execute} ({message}); allow it in the agent's configuration "
                    "or ask the ssh source"
                ) from None
            raise
        return json.loads(reply)["return"]

    def _agent_failed(self, error: libvirt.libvirtError) -> str:
        code = error.get_error_code() or 0
        message = error.get_error_message() or str(error)
        if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_DOMAIN):
            with self._client.errors("reading cloud-init's result", host=self._client.host):
                raise error  # the connection or the VM is gone: not an answer, a failure
        return agent_detail(code, message)
