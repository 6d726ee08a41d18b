"""The PSRP transport (pypsrp): one warm RunspacePool; each request is one pipeline of typed cmdlet calls.

A fixed :class:`~polyvisor_hyperv.commands.Script` is a script command (``AddScript``) whose ``param()`` block is
bound by ``AddParameter``, as a cmdlet's parameters are: its text is the package's, its values typed parameters.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from polyvisor.backend import Deadline
from polyvisor_hyperv.commands import Request, Script, Step, Switch, qualified_name
from polyvisor_hyperv.errors import ERROR_CATEGORY_NAMES, ErrorRecord
from polyvisor_hyperv.http_bounds import bound_session
from polyvisor_hyperv.transport import (
    STOP_GRACE,
    Limit,
    Row,
    ScriptEnded,
    SessionLost,
    Transport,
    refused_before_running,
    shell_is_gone,
)

__all__ = ["PSRPTransport", "plain"]

_INT32 = range(-(2**31), 2**31)
# The shortest Receive held while waiting on a deadline: fine enough to stop a pipeline within a second of it.
_SHORTEST_POLL = 0.25
# Between two attempts to reconnect to a running pipeline while its host cannot be reached.
_RETRY_PAUSE = 0.2
_ACTION_RECONNECT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Reconnect"
# ERROR_WINRS_SHELLCOMMAND_DISCONNECT_OPERATION_NOT_VALID: a Disconnect of a pool that is disconnected already.
_ALREADY_DISCONNECTED = 2150859224
# How long one Receive of a streaming script is held: output comes back as soon as there is some, and a stop request
# (or a dead connection) is noticed within this.
_STREAM_POLL = 0.5


class PSRPTransport(Transport):
    """Runs requests over PowerShell Remoting Protocol on a reused runspace pool."""

    _pool: Any = None

    def _open(self) -> Any:
        if self._pool is None:
            from pypsrp.powershell import RunspacePool
            from pypsrp.wsman import WSMan

            options = self.options
            wsman = WSMan(
                options.host,
                port=options.port,
                username=options.username,
                password=options.password.reveal() if options.password else None,
                ssl=options.ssl,
                path=options.path,
                auth=options.auth,
                # This machine sets REQUESTS_CA_BUNDLE; an explicit CA path must win over it.
                cert_validation=options.ca_path if options.ca_path else options.verify,  # type: ignore[arg-type]  # a path is accepted and documented
                encryption=options.encryption,
                no_proxy=True,
                operation_timeout=options.operation_timeout,
                read_timeout=options.read_timeout,
                connection_timeout=options.connect_timeout,
                # pypsrp sleeps this (doubling) between retries of a timed-out Receive, past any deadline; each
                # retry is bounded by the call's deadline instead (http_bounds).
                reconnection_backoff=0.0,
                # Kerberos: the service principal Windows' own WinRM client asks for, HTTP/<host>.
                negotiate_service="HTTP",
                negotiate_hostname_override=options.spn_host,
            )
            _fresh_session(wsman, self._budget)
            pool = RunspacePool(wsman, idle_timeout=options.idle_timeout)
            try:
                pool.open()
            except BaseException as error:
                if options.auth in ("kerberos", "negotiate", "credssp"):
                    from polyvisor_hyperv.kerberos import close_failed_responses

                    close_failed_responses(error)
                _quietly(wsman.close)
                raise
            self._pool = pool
        return self._pool

    def _invoke(self, request: Request, limit: Limit) -> tuple[list[Row], ErrorRecord | None]:
        from pypsrp.complex_objects import PSInvocationState
        from pypsrp.powershell import PowerShell

        ps = PowerShell(self._open())
        statements = _statements(request.steps)
        for index, statement in enumerate(statements):
            last = index == len(statements) - 1
            for step in statement:
                if isinstance(step, Script):
                    # The script's param() block takes these; it sets $ErrorActionPreference itself.
                    ps.add_script(step.text)
                    for name, value in step.parameters.items():
                        _add_parameter(ps, name, value)
                    continue
                ps.add_cmdlet(qualified_name(step.command))
                for name, value in step.parameters.items():
                    _add_parameter(ps, name, value)
                # Stop at the first error, as the WinRM shell runner does with $ErrorActionPreference; a step's
                # own ErrorAction wins (PowerShell refuses a parameter bound twice).
                if "ErrorAction" not in step.parameters:
                    ps.add_parameter("ErrorAction", "Stop")
            if last and request.select is not None:
                ps.add_cmdlet("Select-Object").add_parameter("Property", list(request.select))
            if not last:
                # Only the last statement's output is the reply; the runner on the WinRM shell behaves alike.
                ps.add_cmdlet("Out-Null")
            ps.add_statement()
        try:
            ps.begin_invoke()
        except Exception as error:
            if refused_before_running(error):  # refused before the pipeline existed: nothing ran
                raise SessionLost from error
            raise
        while ps.state == PSInvocationState.RUNNING:
            if limit.remaining() <= 0:
                # Ctrl+C for the pipeline: the cmdlet stops where it is (a blocked Stop-VM stops waiting).
                try:
                    with self._budget.until(Deadline(STOP_GRACE)):
                        ps.stop()
                except Exception:  # the pool is in doubt: the next request opens a new one
                    self._discard()
                    raise limit.timed_out(stopped=False) from None
                raise limit.timed_out(stopped=True)
            # WS-Management durations may be fractional (xs:duration); pypsrp writes the number as given.
            wait = limit.poll_interval(self.options.operation_timeout, _SHORTEST_POLL)
            try:
                ps.poll_invoke(timeout=wait)  # type: ignore[arg-type]  # a float renders as PT0.25S
            except Exception as error:
                # The pipeline runs on without us: reconnect to it and read on, rather than give its outcome up.
                if not _dropped(error) or not self._resume(ps, limit):
                    raise
        # No Signal Terminate (pypsrp's close()): the pipeline is over once its final Receive said so, and Windows
        # answers a quick pipeline's Command with one Receive holding the output and CommandState Done (pypsrp's
        # recorded tests/tests_pypsrp/responses/test_psrp_run_protocol_version_2.3.yml; its invoke() sends none).
        # That keeps a query to two HTTP requests.
        ps.runspace_pool.pipelines.pop(ps.id, None)
        errors = list(ps.streams.error)
        if ps.had_errors or errors:
            record = _record(errors[-1]) if errors else ErrorRecord("the pipeline failed without an error record")
            return [], record
        return [_row(obj) for obj in ps.output], None

    def _resume(self, ps: Any, limit: Limit) -> bool:
        """Reconnect to a running pipeline after its connection dropped; False when the host has it no more.

        On a new HTTP connection (the same wsmv:SessionId): Disconnect the pool, which ends any Receive the host
        still holds for the dead connection without its output (MS-PSRP 3.1.4.9); Reconnect it, then the command
        (MS-PSRP 3.1.4.10.2, 3.1.5.3.18); the output that waited on the host comes with the next Receive. A host
        still unreachable is tried again until the limit passes (then TimeoutError: the outcome is unknown). False
        when the pool or the pipeline is gone (a restarted host; output lost with the connection): the caller
        reports the connection lost, its outcome unknown. So does a host that refuses the connection: no WinRM
        service listens, and a stopped or restarted one has lost its shells.
        """
        from pypsrp.complex_objects import PSInvocationState, RunspacePoolState

        pool = self._pool
        while True:
            if limit.remaining() <= 0:
                self._discard()
                raise limit.cut_off()
            _fresh_session(pool.connection, self._budget)
            try:
                if pool.state == RunspacePoolState.OPENED:
                    try:
                        pool.disconnect()
                    except Exception as error:
                        if _fault_code(error) != _ALREADY_DISCONNECTED:  # a Disconnect whose answer was lost
                            raise
                        pool.state = RunspacePoolState.DISCONNECTED
                pool.connect()  # the same client session: Reconnect
                _reconnect_command(pool, ps)
            except Exception as error:
                if shell_is_gone(error) or _not_listening(error):
                    # The pool is gone, or so is the WinRM service that held it (a connect refused: stopped or
                    # restarting, its shells lost with it).
                    return False
                if _dropped(error) or refused_before_running(error):
                    time.sleep(min(_RETRY_PAUSE, max(limit.remaining(), 0.0)))
                    continue
                raise
            ps.state = PSInvocationState.RUNNING
            return True

    def stream(self, script: str, on_line: Callable[[str], None], stop: threading.Event) -> None:
        """Run a fixed, long-running script; hand each output object (a line of text) to ``on_line`` as it arrives.

        Return once ``stop`` is set, after stopping the pipeline on the host (PSRP Stop). A script that ends by
        itself, or a connection that fails, raises (a script's error record as :class:`ScriptEnded`); the pool is
        then discarded. Meant for a transport of its own: it holds the session for as long as the script runs.
        """
        from pypsrp.complex_objects import PSInvocationState
        from pypsrp.powershell import PowerShell

        with self._lock:
            try:
                ps = PowerShell(self._open())
                ps.add_script(script)
                ps.begin_invoke()
                taken = 0
                while ps.state == PSInvocationState.RUNNING:
                    if stop.is_set():
                        ps.stop()
                        return
                    ps.poll_invoke(timeout=_STREAM_POLL)  # type: ignore[arg-type]  # a float renders as PT0.5S
                    for item in ps.output[taken:]:
                        on_line(str(plain(item)))
                    taken = len(ps.output)
            except BaseException:
                self._discard()
                raise
            errors = list(ps.streams.error)
            self._discard()
            raise ScriptEnded(_record(errors[-1]) if errors else ErrorRecord("the script ended"))

    def _is_open(self) -> bool:
        return self._pool is not None

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            _quietly(pool.connection.close)

    def _shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            _quietly(pool.close)
            _quietly(pool.connection.close)


def _fresh_session(wsman: Any, budget: Any) -> None:
    """Give pypsrp's WSMan a new requests session (new connections, a new security context), bounded by ``budget``.

    Built before any request so that its adapters are bounded from the first (pypsrp has no public way to reach it
    earlier); after a dropped connection, so that nothing of the dead connection's context is reused.
    """
    http = wsman.transport
    if http.session is not None:
        _quietly(http.session.close)
    http.encryption = None
    http.session = http._build_session()
    bound_session(http.session, budget)


def _dropped(error: BaseException) -> bool:
    """Whether a request failed because its connection dropped (reset, closed, cut short) rather than timed out."""
    import requests

    timeouts = (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout)
    dropped = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    return isinstance(error, dropped) and not isinstance(error, timeouts)


def _not_listening(error: BaseException) -> bool:
    """Whether a connect was refused (ECONNREFUSED): nothing listens on the host's port."""
    import requests
    import urllib3.exceptions

    if not isinstance(error, requests.exceptions.ConnectionError) or not error.args:
        return False
    reason = getattr(error.args[0], "reason", error.args[0])
    return isinstance(reason, urllib3.exceptions.NewConnectionError) and isinstance(
        reason.__context__ or reason.__cause__, ConnectionRefusedError
    )


def _fault_code(error: BaseException) -> int | None:
    try:
        code = getattr(error, "code", None)
    except (IndexError, KeyError, TypeError):  # pypsrp computes attributes from args
        return None
    return code if isinstance(code, int) else None


def _reconnect_command(pool: Any, ps: Any) -> None:
    """Reconnect one command of a reconnected pool: a Reconnect naming it (MS-PSRP 3.1.5.3.18; pypsrp has no call)."""
    import xml.etree.ElementTree as ET

    from pypsrp.wsman import NAMESPACES, SelectorSet

    selectors = SelectorSet()
    selectors.add_option("ShellId", pool.shell.id or "")
    body = ET.Element(f"{{{NAMESPACES['rsp']}}}Reconnect", CommandId=str(ps.id).upper())
    pool.connection.invoke(_ACTION_RECONNECT, pool.shell.resource_uri, body, selector_set=selectors)


def _statements(steps: tuple[Step | Script, ...]) -> list[list[Step | Script]]:
    out: list[list[Step | Script]] = []
    for step in steps:
        if step.pipe:
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _add_parameter(ps: Any, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, Switch):
        # PSRP binds a parameter sent without a value as a present switch.
        ps.add_parameter(name)
    elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT32:
        # pypsrp tags every int as I32; larger ones go as text, which the parameter binder converts to the
        # parameter's own Int64/UInt64 type (a conversion, never an evaluation).
        ps.add_parameter(name, str(value))
    elif isinstance(value, list | tuple):
        ps.add_parameter(name, list(value))
    elif isinstance(value, bytes):
        # pypsrp serializes bytes as a byte array (<BA>, base64 in the CLIXML): a System.Byte[] on the host.
        ps.add_parameter(name, bytes(value))
    else:
        ps.add_parameter(name, value)


def plain(value: Any) -> Any:
    """Return a deserialized PSRP value as plain Python: enums by name, GUIDs as text, objects as dicts."""
    from pypsrp.complex_objects import ComplexObject, GenericComplexObject

    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, GenericComplexObject):
        types = [t.removeprefix("Deserialized.") for t in value.types]
        if "System.Enum" in types:
            return value.to_string
        props = {**value.adapted_properties, **value.extended_properties}
        if not props:
            if value.property_sets:
                return plain(value.property_sets[0]) if len(value.property_sets) == 1 else plain(value.property_sets)
            return value.to_string
        return {key: plain(item) for key, item in props.items()}
    if isinstance(value, ComplexObject):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _row(obj: Any) -> Row:
    value = plain(obj)
    return value if isinstance(value, dict) else {"value": value}


def _record(raw: Any) -> ErrorRecord:
    """Read an ErrorRecord whether pypsrp typed it (error stream) or left it generic (pipeline state)."""
    from pypsrp.complex_objects import GenericComplexObject

    if isinstance(raw, GenericComplexObject) and not hasattr(raw, "fq_error"):
        props = {**raw.adapted_properties, **raw.extended_properties}
        exception = props.get("Exception")
        category: Any = props.get("ErrorCategory_Category")
        fqid = props.get("FullyQualifiedErrorId")
        target = props.get("ErrorCategory_TargetName")
        details = props.get("ErrorDetails_Message")
    else:
        exception = getattr(raw, "exception", None)
        category = getattr(raw, "category", None)
        fqid = getattr(raw, "fq_error", None)
        target = getattr(raw, "target_name", None)
        details = getattr(raw, "details_message", None)
    message = details or _exception_message(exception) or str(getattr(raw, "to_string", "") or "")
    if isinstance(category, int):
        category = ERROR_CATEGORY_NAMES.get(category, "NotSpecified")
    exception_type = ""
    if isinstance(exception, GenericComplexObject) and exception.types:
        exception_type = exception.types[0].removeprefix("Deserialized.")
    return ErrorRecord(
        message=message or "the command failed without a message",
        category=str(category or "NotSpecified"),
        fully_qualified_error_id=str(fqid or ""),
        exception_type=exception_type,
        target_name=str(target or ""),
    )


def _exception_message(exception: Any) -> str:
    from pypsrp.complex_objects import GenericComplexObject

    if isinstance(exception, GenericComplexObject):
        message = exception.adapted_properties.get("Message") or exception.extended_properties.get("Message")
        return str(message or exception.to_string or "")
    return str(exception or "")


def _quietly(action: Any) -> None:
    # Best-effort cleanup of a session that is being dropped anyway.
    with contextlib.suppress(Exception):
        action()
