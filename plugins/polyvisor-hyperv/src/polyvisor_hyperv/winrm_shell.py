"""The WinRM shell transport (pywinrm): one reused cmd shell; every request runs the fixed ``invoke.ps1``.

The command line is always the same (``powershell.exe ... -EncodedCommand <invoke.ps1>``); the request travels as
base64(UTF-8 JSON) on stdin and the reply comes back the same way on stdout. No value ever reaches the command
line, so nothing is parsed as PowerShell and cmd.exe's 8191-character limit never applies to payloads.

A fixed :class:`~polyvisor_hyperv.commands.Script` travels in the same JSON as its constant text and its parameters;
the runner makes the text a script block (``[ScriptBlock]::Create``) and splats the parameters into its ``param()``
block, as it splats a cmdlet's: the values are bound, never parsed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any
from xml.sax.saxutils import unescape

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, PolyvisorError
from polyvisor_hyperv.commands import Request, Script, Switch, qualified_name
from polyvisor_hyperv.errors import ErrorRecord
from polyvisor_hyperv.http_bounds import Budget, bound_session
from polyvisor_hyperv.transport import (
    STOP_GRACE,
    Limit,
    Row,
    ScriptEnded,
    SessionLost,
    Transport,
    refused_before_running,
)

__all__ = ["WinRMShellTransport", "decode_clixml", "encode_request", "powershell_arguments", "runner_script"]

# pywinrm has no "negotiate"; its NTLM transport is what Negotiate falls back to without Kerberos.
_PYWINRM_AUTH = {"negotiate": "ntlm", "ntlm": "ntlm", "kerberos": "kerberos", "credssp": "credssp", "basic": "basic"}
_STDIN_CHUNK = 48 * 1024  # well under the 150 KiB envelope limit once wrapped in base64 again by pywinrm
_LAST_RECEIVE = 0.5  # seconds: with less left than this, the command is terminated instead of received again


@cache
def runner_script() -> str:
    """Return invoke.ps1 without comment lines (they would only lengthen the command line)."""
    text = resources.files("polyvisor_hyperv").joinpath("scripts/invoke.ps1").read_text(encoding="utf-8")
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _without_comments(script: str) -> str:
    lines = [line.rstrip() for line in script.splitlines()]
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))


@cache
def powershell_arguments() -> tuple[str, ...]:
    encoded = base64.b64encode(runner_script().encode("utf-16-le")).decode("ascii")
    return ("-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded)


def encode_request(request: Request) -> str:
    """Return the stdin payload for a request: base64 of the UTF-8 JSON the runner expects."""
    steps: list[dict[str, Any]] = []
    for step in request.steps:
        entry: dict[str, Any] = {"parameters": _parameters(step.parameters), "pipeInput": step.pipe}
        if isinstance(step, Script):
            entry["script"] = step.text
        else:
            entry["command"] = qualified_name(step.command)
        byte_parameters = _byte_parameters(step.parameters)
        if byte_parameters:
            entry["bytes"] = byte_parameters
        steps.append(entry)
    body = {"steps": steps, "select": list(request.select) if request.select is not None else None}
    return base64.b64encode(json.dumps(body, ensure_ascii=False).encode("utf-8")).decode("ascii")


def _byte_parameters(parameters: Mapping[str, Any]) -> dict[str, str] | None:
    # JSON has no bytes: they travel as base64 text, which the runner decodes into a byte[] (data, never source).
    out = {
        name: base64.b64encode(value).decode("ascii") for name, value in parameters.items() if isinstance(value, bytes)
    }
    return out or None


def _parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    # Splatting binds $true to a switch as -Switch:$true; None means "leave the parameter out".
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if isinstance(value, bytes):
            continue  # in "bytes"
        if isinstance(value, Switch):
            out[name] = True
        elif isinstance(value, tuple | list):
            out[name] = list(value)
        elif value is not None:
            out[name] = value
    return out


class WinRMShellTransport(Transport):
    """Runs requests through powershell.exe in one reused WinRM cmd shell."""

    _protocol: Any = None
    _shell_id: str | None = None

    def _open(self) -> tuple[Any, str]:
        if self._protocol is None or self._shell_id is None:
            from winrm.protocol import Protocol

            options = self.options
            protocol = Protocol(
                endpoint=options.endpoint,
                transport=_PYWINRM_AUTH[options.auth],  # type: ignore[arg-type]  # a literal from the table
                username=options.username,
                password=options.password.reveal() if options.password else None,
                server_cert_validation="validate" if options.verify else "ignore",
                # An explicit CA path must win over REQUESTS_CA_BUNDLE; None keeps requests' own default.
                ca_trust_path=options.ca_path,  # type: ignore[arg-type]  # None is accepted at run time
                message_encryption=options.encryption,  # type: ignore[arg-type]  # validated choice
                proxy=None,
                operation_timeout_sec=options.operation_timeout,
                read_timeout_sec=options.read_timeout,
            )
            _bound_requests(protocol, self._budget, options)
            # pywinrm writes idle_timeout as given; Windows wants an xs:duration (a bare number is a schema fault).
            idle = f"PT{options.idle_timeout}S" if options.idle_timeout is not None else None
            try:
                shell_id = protocol.open_shell(codepage=65001, noprofile=True, idle_timeout=idle)
            except BaseException as error:
                if options.auth == "credssp":
                    from polyvisor_hyperv.kerberos import close_failed_responses

                    # requests-credssp raises from its response hook with the response still checked out.
                    close_failed_responses(error)
                    protocol.transport.close_session()
                raise
            self._protocol, self._shell_id = protocol, shell_id
        return self._protocol, self._shell_id

    def _invoke(self, request: Request, limit: Limit) -> tuple[list[Row], ErrorRecord | None]:
        from winrm.exceptions import WinRMOperationTimeoutError

        protocol, shell_id = self._open()
        payload = encode_request(request)
        try:
            # stdin as a pipe (WINRS_CONSOLEMODE_STDIN=FALSE): the request is fed to [Console]::In.ReadToEnd(), which
            # needs the End of the last Send to be an end of input; Ansible's winrm plugin feeds stdin the same way.
            command_id = protocol.run_command(
                shell_id, "powershell.exe", powershell_arguments(), console_mode_stdin=False
            )
        except Exception as error:
            if refused_before_running(error):  # refused before powershell.exe started: nothing ran
                raise SessionLost from error
            raise
        terminated = False
        try:
            for start in range(0, len(payload), _STDIN_CHUNK):
                chunk = payload[start : start + _STDIN_CHUNK]
                protocol.send_command_input(shell_id, command_id, chunk, end=start + _STDIN_CHUNK >= len(payload))
            stdout, stderr = b"", b""
            done = False
            code = 0
            while not done:
                # pywinrm writes OperationTimeout in whole seconds, so a Receive is held at least one second: with
                # less than half a second left of a verb's deadline, stop now rather than overshoot it by more. A
                # read receives while time is left: a quick query's reply comes at once, and a hold that would run
                # past the deadline is cut by the network bound (http_bounds).
                left = limit.remaining()
                if left <= 0 or (limit.explicit and left < _LAST_RECEIVE):
                    terminated = True
                    raise self._terminate(protocol, shell_id, command_id, limit)
                try:
                    out, err, code, done = self._receive(protocol, shell_id, command_id, limit)
                except WinRMOperationTimeoutError:
                    continue  # the host held the Receive for OperationTimeout with nothing to say: ask again
                stdout += out
                stderr += err
        finally:
            # The command may already be gone; the reply is what matters.
            if not terminated:
                with contextlib.suppress(Exception):
                    protocol.cleanup_command(shell_id, command_id)
        return _decode_reply(stdout, stderr, code, host=self.options.host)

    def _receive(self, protocol: Any, shell_id: str, command_id: str, limit: Limit) -> tuple[bytes, bytes, int, bool]:
        """One Receive, held no longer than the limit allows (in pywinrm's whole seconds)."""
        wait = max(1, round(limit.poll_interval(self.options.operation_timeout, 1.0)))
        configured = protocol.operation_timeout_sec
        protocol.operation_timeout_sec = wait
        try:
            result: tuple[bytes, bytes, int, bool] = protocol.get_command_output_raw(shell_id, command_id)
        finally:
            protocol.operation_timeout_sec = configured
        return result

    def _terminate(self, protocol: Any, shell_id: str, command_id: str, limit: Limit) -> PolyvisorError:
        """Signal Terminate to the command (Windows ends the process, and the cmdlet with it); return the error."""
        try:
            with self._budget.until(Deadline(STOP_GRACE)):
                protocol.cleanup_command(shell_id, command_id)
        except Exception:  # the shell is in doubt: the next request opens a new one
            self._discard()
            return limit.timed_out(stopped=False)
        return limit.timed_out(stopped=True)

    def stream(self, script: str, on_line: Callable[[str], None], stop: threading.Event) -> None:
        """Run a fixed, long-running script in powershell.exe; hand each stdout line to ``on_line`` as it arrives.

        Return once ``stop`` is set, after terminating the command (WinRS Terminate, which ends the process). A
        script that exits by itself, or a connection that fails, raises (an exit as :class:`ScriptEnded`); the
        shell is then discarded. Meant for a transport of its own: it holds the shell while the script runs.
        """
        from winrm.exceptions import WinRMOperationTimeoutError

        encoded = base64.b64encode(_without_comments(script).encode("utf-16-le")).decode("ascii")
        arguments = ("-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded)
        with self._lock:
            try:
                protocol, shell_id = self._open()
                command_id = protocol.run_command(shell_id, "powershell.exe", arguments)
                pending, stderr = b"", b""
                configured = protocol.operation_timeout_sec
                while True:
                    if stop.is_set():
                        # Terminate ends powershell.exe; the shell is closed with the transport.
                        with contextlib.suppress(Exception):
                            protocol.cleanup_command(shell_id, command_id)
                        return
                    # pywinrm writes OperationTimeout in whole seconds: one second is the shortest Receive.
                    protocol.operation_timeout_sec = 1
                    try:
                        out, err, code, done = protocol.get_command_output_raw(shell_id, command_id)
                    except WinRMOperationTimeoutError:
                        continue
                    finally:
                        protocol.operation_timeout_sec = configured
                    pending += out
                    stderr += err
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            on_line(line.decode("utf-8", errors="replace").strip())
                    if done:
                        detail = stderr.decode("utf-8", errors="replace").strip()[:2000]
                        raise ScriptEnded(ErrorRecord(f"powershell.exe exited with code {code}: {detail}"))
            except BaseException:
                self._discard()
                raise

    def _is_open(self) -> bool:
        return self._protocol is not None and self._shell_id is not None

    def _discard(self) -> None:
        protocol, self._protocol, self._shell_id = self._protocol, None, None
        if protocol is not None:
            # Dropping a broken session.
            with contextlib.suppress(Exception):
                protocol.transport.close_session()

    def _shutdown(self) -> None:
        protocol, shell_id = self._protocol, self._shell_id
        self._protocol, self._shell_id = None, None
        if protocol is not None and shell_id is not None:
            # Closing is best effort; the host reaps idle shells.
            with contextlib.suppress(Exception):
                protocol.close_shell(shell_id)


def _bound_requests(protocol: Any, budget: Budget, options: Any) -> None:
    """Build pywinrm's requests session now, its adapters bounded by ``budget`` before its first request.

    pywinrm builds the session on its first request, and with message encryption that very build sends the
    request that sets up the security context (``setup_encryption``), so the adapters are bounded there too.
    Kerberos gets its session from :func:`_use_pyspnego_kerberos`, bounded the same way.
    """
    transport = protocol.transport
    setup = transport.setup_encryption

    def bounded_setup(session: Any) -> None:
        bound_session(session, budget)
        setup(session)

    transport.setup_encryption = bounded_setup
    if options.auth == "kerberos":
        _use_pyspnego_kerberos(protocol, options)
        bound_session(transport.session, budget)
    else:
        bound_session(transport.build_session(), budget)


_CLIXML_HEADER = "#< CLIXML"
_CLIXML_ERROR_LINE = re.compile(r"<S\s+S=\"Error\"\s*>(.*?)</S>", re.DOTALL | re.IGNORECASE)
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _use_pyspnego_kerberos(protocol: Any, options: Any) -> None:
    """pywinrm's Kerberos needs pykerberos and only reads a ticket cache: authenticate through pyspnego instead."""
    from polyvisor_hyperv.kerberos import KerberosAuth, install_kerberos

    auth = KerberosAuth(
        options.username,
        options.password.reveal() if options.password else None,
        hostname=options.spn_host or options.host,
    )
    verify: bool | str = (options.ca_path or True) if options.verify else False
    encrypt = options.encryption == "always" or (options.encryption == "auto" and not options.ssl)
    install_kerberos(protocol.transport, auth, verify=verify, encrypt=encrypt)


def decode_clixml(text: str) -> str:
    """Return the error lines of PowerShell's CLIXML stderr as plain text (other text unchanged).

    ``powershell.exe -EncodedCommand`` with stderr redirected writes its error stream as ``#< CLIXML`` followed by
    ``<Objs>`` holding one ``<S S="Error">`` per line, with control characters escaped as ``_xHHHH_``. Read with
    a pattern, not an XML parser: the text comes from the host and is only ever shown.
    """
    stripped = text.lstrip()
    if not stripped.startswith(_CLIXML_HEADER):
        return text
    lines = [
        _CLIXML_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), unescape(raw, {"&quot;": '"', "&apos;": "'"}))
        for raw in _CLIXML_ERROR_LINE.findall(stripped)
    ]
    return "".join(lines).strip() if lines else text


def _decode_reply(stdout: bytes, stderr: bytes, code: int, *, host: str) -> tuple[list[Row], ErrorRecord | None]:
    text = stdout.decode("ascii", errors="replace").strip()
    try:
        reply = json.loads(base64.b64decode(text, validate=True).decode("utf-8"))
    except ValueError:
        errors = decode_clixml(stderr.decode("utf-8", errors="replace")).strip()
        detail = errors[:2000] or text[:2000]
        raise BackendError(
            f"powershell.exe exited with code {code} without a readable reply: {detail}",
            code=code,
            native_message=detail,
            host=host,
        ) from None
    if not isinstance(reply, dict):
        raise BackendError("the request runner replied with something that is not an object", host=host)
    if not reply.get("ok"):
        return [], ErrorRecord.from_fields(reply.get("error") or {})
    output = reply.get("output")
    if output is None:
        output = []
    elif not isinstance(output, list):
        output = [output]  # ConvertTo-Json unrolls one-element arrays in some PowerShell versions
    return [item if isinstance(item, dict) else {"value": item} for item in output], None
