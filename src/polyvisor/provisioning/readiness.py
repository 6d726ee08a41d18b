"""The readiness policy: what counts as a guest's SSH server answering, and how to say why a guest is not ready.

:meth:`polyvisor.VM.wait_until_ready` asks readiness sources until each says the guest finished initializing:
the backend's own (libvirt: ``cloud-init``, its result read through the guest agent; Hyper-V: ``heartbeat``) and
the core's ``ssh``, which opens a TCP connection and reads the server's identification line. The rules live here
so every backend and both faces share them.

An SSH server speaks first: RFC 4253 section 4.2 has it send ``SSH-protoversion-softwareversion`` ending in CR LF,
possibly after other lines of text. A connection that sends anything else, or nothing, is not an SSH server ready
for a login.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from polyvisor.errors import ValidationError
from polyvisor.model import ReadyAnswer

__all__ = [
    "BANNER_LIMIT",
    "CLOUD_INIT_RESULT",
    "CLOUD_INIT_SOURCE",
    "CLOUD_INIT_STATUS",
    "SSH_PORT",
    "SSH_SOURCE",
    "banner_complete",
    "cloud_init_answer",
    "endpoint",
    "explain_ready",
    "socket_error",
    "ssh_answer",
    "validate_port",
]

CLOUD_INIT_SOURCE = "cloud-init"
"""The readiness source that reads cloud-init's run files in the guest (through a guest agent)."""
CLOUD_INIT_RESULT = "/run/cloud-init/result.json"
"""cloud-init writes this file when its last stage (modules-final) ends: ``{"v1": {"datasource", "errors"}}``."""
CLOUD_INIT_STATUS = "/run/cloud-init/status.json"
"""cloud-init keeps this file up to date while it runs: ``{"v1": {"stage", "init", "modules-final", ...}}``."""
SSH_SOURCE = "ssh"
"""The readiness source the core provides on every backend: the guest's SSH server answering."""
SSH_PORT = 22
BANNER_LIMIT = 2048
"""The most bytes read while looking for the identification line (RFC 4253 allows 255 per line)."""


def validate_port(port: object) -> int:
    """Return ``port`` if it is a TCP port number; raise ValidationError otherwise."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError(f"ssh_port must be a TCP port number from 1 to 65535, got {port!r}", field="ssh_port")
    return port


def endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def socket_error(error: BaseException) -> str:
    """Say in words why a connection attempt or read failed ("connection refused", "no answer within 5s")."""
    if isinstance(error, TimeoutError):  # socket.timeout and asyncio's timeouts are the builtin TimeoutError
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there yet)"
    if isinstance(error, ConnectionResetError):
        return "connection reset by the guest"
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__
    return str(error) or type(error).__name__


def banner_complete(data: bytes) -> bool:
    """Whether ``data`` holds enough to judge: an identification line, a line that ends, or the limit."""
    if len(data) >= BANNER_LIMIT:
        return True
    return any(line.startswith(b"SSH-") for line in data.split(b"\n")[:-1])


def ssh_answer(host: str, port: int, data: bytes, error: str | None) -> ReadyAnswer:
    """The ``ssh`` source's answer from what the connection to ``host``:``port`` gave: ready once the server sent
    its identification line, else what it did instead."""
    where = endpoint(host, port)
    lines = data.split(b"\n")
    for line in lines[:-1]:
        if line.startswith(b"SSH-"):
            banner = line.rstrip(b"\r").decode("ascii", "replace")
            return ReadyAnswer(SSH_SOURCE, True, f"{where} answered {banner}")
    if error is not None and not data:
        return ReadyAnswer(SSH_SOURCE, False, f"{where}: {error}")
    if not data:
        return ReadyAnswer(SSH_SOURCE, False, f"{where} accepted the connection and closed it without a word")
    first = data[:60].decode("ascii", "replace").splitlines()[0] if data.strip() else repr(data[:20])
    return ReadyAnswer(SSH_SOURCE, False, f"{where} answered {first!r}, not an SSH identification line")


def _v1(data: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    v1 = document.get("v1") if isinstance(document, dict) else None
    return v1 if isinstance(v1, dict) else None


def cloud_init_answer(result: bytes | None, status: bytes | None) -> ReadyAnswer:
    """The ``cloud-init`` source's answer from the guest's :data:`CLOUD_INIT_RESULT` and :data:`CLOUD_INIT_STATUS`
    (None: no such file). Finished once the result exists; its ``errors`` are the answer's errors."""
    if result is not None:
        v1 = _v1(result)
        if v1 is None:
            return ReadyAnswer(CLOUD_INIT_SOURCE, detail=f"{CLOUD_INIT_RESULT} is not cloud-init's JSON yet")
        raw = v1.get("errors")
        errors = tuple(str(error) for error in raw) if isinstance(raw, list) else ()
        datasource = str(v1.get("datasource") or "no datasource")
        done = f"done, with {len(errors)} error{'s' if len(errors) != 1 else ''}" if errors else "done"
        if datasource.startswith("DataSourceNone"):
            datasource += ": cloud-init saw no seed, so no keys, hostname or user-data"
        return ReadyAnswer(CLOUD_INIT_SOURCE, True, f"{done} ({datasource})", errors=errors)
    if status is None:
        return ReadyAnswer(CLOUD_INIT_SOURCE, detail=f"not started: no {CLOUD_INIT_STATUS} yet")
    v1 = _v1(status) or {}
    stage = v1.get("stage")
    if stage:
        return ReadyAnswer(CLOUD_INIT_SOURCE, detail=f"running (stage {stage})")
    return ReadyAnswer(CLOUD_INIT_SOURCE, detail=f"running: no {CLOUD_INIT_RESULT} yet")


def explain_ready(answers: Sequence[ReadyAnswer]) -> str:
    """One clause per source: what it answered, for a timeout's message ("cloud-init: running; ssh: ...")."""
    if not answers:
        return "no source was asked"
    return "; ".join(
        f"{answer.source}: {'ready' if answer.ready else 'not ready'}"
        + (f" ({answer.detail})" if answer.detail else "")
        for answer in answers
    )
