"""A PowerShell remoting shell (resource URI .../powershell/<configuration>): one runspace pool.

psrpcore does the MS-PSRP state machine; this module moves its fragments over WinRS
Command/Send/Receive and runs each pipeline's statements on the engine in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import collections
import logging
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    PipelineInputEvent,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    CommandOrigin,
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    InvocationInfo,
    NETException,
    PSInvocationState,
    PSVersion,
    add_note_property,
)

from polyvisor_hyperv_loopback.engine_api import CommandSpec, PipelineEngine, PSErrorRecord

from .shell import (
    SIGNAL_CTRL_C,
    SIGNAL_PS_CRTL_C,
    SIGNAL_PS_CTRL_C,
    SIGNAL_TERMINATE,
    STATE_DONE,
    Shell,
    command_response,
    simple_response,
)
from .soap import (
    NS,
    Request,
    command_not_found,
    element,
    invalid_request,
    operation_timed_out,
    q,
    shell_disconnected,
    shell_not_disconnected,
    sub,
)

_log = logging.getLogger(__name__)
#: How often a held Receive looks whether its client's connection is still there.
_GONE_POLL = 0.1
#: How many released pipeline ids a shell remembers, so that a client's Signal Terminate after the final Receive
#: (pypsrp's PowerShell.close()) is answered as Windows answers it (pypsrp test_psrp_multiple_invocations.yml).
_RELEASED_KEPT = 256


#: The PSVersionTable a Windows PowerShell 5.1 server sends in APPLICATION_PRIVATE_DATA (recorded from
#: Windows Server 2016, PowerShell 5.1.14393.2248: pypsrp tests/tests_pypsrp/responses/test_psrp_*.yml).
PS_VERSION = "5.1.14393.2248"
BUILD_VERSION = "10.0.14393.2248"


def application_private_data() -> dict[str, Any]:
    """Return what the server sends before the pool opens: its PSVersionTable."""
    return {
        "PSVersionTable": {
            "PSVersion": PSVersion(PS_VERSION),
            "PSEdition": "Desktop",
            "PSCompatibleVersions": [PSVersion(v) for v in ("1.0", "2.0", "3.0", "4.0", "5.0", PS_VERSION)],
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "BuildVersion": PSVersion(BUILD_VERSION),
            "WSManStackVersion": PSVersion("3.0"),
            "PSRemotingProtocolVersion": PSVersion("2.3"),
            "SerializationVersion": PSVersion("1.1.0.1"),
        }
    }


def _command_specs(statement: Sequence[Any]) -> list[CommandSpec]:
    return [
        CommandSpec(name=cmd.command_text, is_script=bool(cmd.is_script), parameters=list(cmd.parameters))
        for cmd in statement
    ]


def _statements(commands: Sequence[Any]) -> list[list[Any]]:
    statements: list[list[Any]] = [[]]
    for cmd in commands:
        statements[-1].append(cmd)
        if getattr(cmd, "end_of_statement", False):
            statements.append([])
    return [statement for statement in statements if statement]


class _CategoryInfo(ErrorCategoryInfo):
    """ErrorCategoryInfo whose text (sent as ErrorCategory_Message) is Windows PowerShell 5.1's.

    ``ObjectNotFound: (x:String) [Get-VM], VirtualizationException``: the template ``{4}: ({1}:{2}) [{0}], {3}``, each
    part longer than 40 characters cut to its first and last 15 with ``...`` between (ErrorCategoryInfo.GetMessage
    and Ellipsize in System.Management.Automation).
    """

    def __str__(self) -> str:
        return (
            f"{self.Category.name}: ({_ellipsize(self.TargetName)}:{_ellipsize(self.TargetType)}) "
            f"[{_ellipsize(self.Activity)}], {_ellipsize(self.Reason)}"
        )


def _ellipsize(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= 40 else f"{text[:15]}...{text[-15:]}"


def error_record(record: PSErrorRecord) -> ErrorRecord:
    """Return the psrpcore ErrorRecord for an engine error (shape as Windows PowerShell sends it)."""
    return ErrorRecord(
        Exception=_exception(record),
        CategoryInfo=_category_info(record),
        TargetObject=record.target_object,
        FullyQualifiedErrorId=record.fully_qualified_error_id,
        InvocationInfo=_invocation_info(record),
    )


def _invocation_info(record: PSErrorRecord, position: int = 1, length: int = 1) -> InvocationInfo | None:
    """The InvocationInfo of the cmdlet that wrote the record (its name is the record's activity), as a cmdlet added
    to a PSRP pipeline has it: no script line, no position."""
    if not record.activity:
        return None
    return InvocationInfo(
        MyCommand=record.activity,
        BoundParameters={},
        UnboundArguments=[],
        ScriptLineNumber=0,
        OffsetInLine=0,
        HistoryId=1,
        ScriptName="",
        Line="",
        PositionMessage="",
        PSScriptRoot="",
        PSCommandPath=None,
        InvocationName=record.activity,
        PipelineLength=length,
        PipelinePosition=position,
        ExpectingInput=False,
        CommandOrigin=CommandOrigin.Runspace,
        DisplayScriptPosition=None,
    )


def _exception(record: PSErrorRecord) -> NETException:
    exception = NETException(Message=record.message, HResult=-2146233087)
    type_names = [record.exception_type]
    if record.exception_type != "System.Exception":
        type_names.append("System.Exception")
    type_names.append("System.Object")
    exception.PSObject.type_names = type_names
    return exception


def _category_info(record: PSErrorRecord) -> ErrorCategoryInfo:
    try:
        category = ErrorCategory[record.category]
    except KeyError:
        category = ErrorCategory.NotSpecified
    target_type = ""
    if isinstance(record.target_object, str):
        target_type = "String"
    elif record.target_object is not None:
        names = getattr(getattr(record.target_object, "PSObject", None), "type_names", None)
        target_type = names[0].rsplit(".", 1)[-1] if names else type(record.target_object).__name__
    return _CategoryInfo(
        Category=category,
        Activity=record.activity,
        Reason=record.exception_type.rsplit(".", 1)[-1],
        TargetName=record.target_name,
        TargetType=target_type,
    )


@dataclass
class _PipelineRun:
    pipeline: ServerPipeline
    commands: list[Any] = field(default_factory=list)
    no_input: bool = True
    input: list[object] = field(default_factory=list)
    started: bool = False
    finished: bool = False
    #: Set when the client stops the pipeline (or the shell goes away); the engine polls it.
    cancel: threading.Event = field(default_factory=threading.Event)
    #: False from a Disconnect until the command is reconnected: its output waits on the host meanwhile.
    connected: bool = True


class _RunspacePool(ServerRunspacePool):
    """psrpcore's server pool, reading the call id of SET_MAX/MIN_RUNSPACES and GET_AVAILABLE_RUNSPACES in any case.

    PowerShell looks properties up case-insensitively; pypsrp names the call id ``CI``, psrpcore reads ``ci``.
    """

    def _process_SetMaxRunspaces(self, event: SetMaxRunspacesEvent) -> None:
        _call_id_in_lower_case(event)
        super()._process_SetMaxRunspaces(event)

    def _process_SetMinRunspaces(self, event: SetMinRunspacesEvent) -> None:
        _call_id_in_lower_case(event)
        super()._process_SetMinRunspaces(event)

    def _process_GetAvailableRunspaces(self, event: GetAvailableRunspacesEvent) -> None:
        _call_id_in_lower_case(event)
        super()._process_GetAvailableRunspaces(event)


def _call_id_in_lower_case(event: Any) -> None:
    message = event._ps_object
    for prop in message.PSObject.extended_properties:
        if prop.name.lower() == "ci" and prop.name != "ci":
            add_note_property(message, "ci", prop.get_value(message), force=True)


class PSRPShell(Shell):
    """A runspace pool served over WinRS."""

    describes_process = True
    disconnects = True

    def __init__(self, resource_uri: str, owner: str, client_ip: str, request: Request, engine: PipelineEngine) -> None:
        spec = request.body.find(q("rsp", "Shell"))
        if spec is None:
            raise invalid_request("The Create request lacks rsp:Shell.")
        creation = spec.find(f"{{{NS['ps']}}}creationXml")
        if creation is None or not creation.text:
            raise invalid_request("The PowerShell Create request lacks creationXml.")
        shell_id = (spec.get("ShellId") or str(uuid.uuid4())).upper()
        super().__init__(
            shell_id,
            resource_uri,
            owner,
            client_ip,
            (spec.findtext(q("rsp", "InputStreams")) or "stdin pr").strip(),
            (spec.findtext(q("rsp", "OutputStreams")) or "stdout").strip(),
        )
        self.session_id = request.session_id
        self._engine = engine
        self._changed = threading.Condition(threading.RLock())
        self._pool = _RunspacePool(application_private_data())
        self._runs: dict[uuid.UUID, _PipelineRun] = {}
        self._outgoing: dict[uuid.UUID | None, list[bytes]] = {}
        self._closed = False
        #: Receives held now, and Receives served so far (test hooks: LoopbackHost.receives).
        self.receives_waiting = 0
        self.receives_started = 0
        # Pipelines whose final Receive was answered: released, but a later Signal Terminate still succeeds.
        self._released: collections.deque[uuid.UUID] = collections.deque(maxlen=_RELEASED_KEPT)
        with self._changed:
            self._feed(None, _b64(creation.text))

    @property
    def pipeline_count(self) -> int:
        """Pipelines the shell still holds (running, or finished with output not yet received)."""
        with self._changed:
            return len(self._runs)

    # -- incoming -----------------------------------------------------------------------

    def _feed(self, pipeline_id: uuid.UUID | None, data: bytes) -> None:
        """Hand fragments to psrpcore and act on the events they complete (lock held)."""
        self._pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
        while (event := self._pool.next_event()) is not None:
            self._on_event(event)
        self._changed.notify_all()

    def _on_event(self, event: Any) -> None:
        if isinstance(event, CreatePipelineEvent):
            run = self._runs.get(event.pipeline_id)
            if run is None:
                return
            metadata = event.pipeline
            run.commands = list(metadata.commands)
            run.no_input = bool(metadata.no_input)
            # Windows sends no PIPELINE_STATE Running: the first message a client sees is output or the final state
            # (pypsrp tests/tests_pypsrp/responses/test_psrp_long_running_cmdlet.yml), so a Receive is answered
            # once there is something to say. psrpcore's start() would emit Running.
            run.pipeline._change_state(PSInvocationState.Running, emit=False)
            if run.no_input:
                self._start(run)
        elif isinstance(event, PipelineInputEvent):
            run = self._runs.get(event.pipeline_id)
            if run is not None:
                run.input.append(event.data)
        elif isinstance(event, EndOfPipelineInputEvent):
            run = self._runs.get(event.pipeline_id)
            if run is not None and not run.started:
                self._start(run)
        elif isinstance(event, SetMaxRunspacesEvent):
            # As PowerShell's RunspacePool: at least one, and not below the minimum.
            maximum = event.count
            self._pool.runspace_availability_response(event.ci, maximum >= 1 and maximum >= self._pool.min_runspaces)
        elif isinstance(event, SetMinRunspacesEvent):
            minimum = event.count
            self._pool.runspace_availability_response(event.ci, minimum >= 1 and minimum <= self._pool.max_runspaces)
        elif isinstance(event, ResetRunspaceStateEvent):
            self._pool.runspace_availability_response(event.ci, True)
        elif isinstance(event, GetAvailableRunspacesEvent):
            self._pool.runspace_availability_response(event.ci, self._pool.max_runspaces)

    def _start(self, run: _PipelineRun) -> None:
        run.started = True
        threading.Thread(target=self._run, args=(run,), name=f"psrp-{run.pipeline.pipeline_id}", daemon=True).start()

    def _run(self, run: _PipelineRun) -> None:
        outputs: list[object] = []
        errors: list[PSErrorRecord] = []
        warnings: list[str] = []
        terminating: PSErrorRecord | None = None
        for statement in _statements(run.commands):
            try:
                result = self._engine.invoke_pipeline(
                    _command_specs(statement), run.input, run.cancel, lambda value: self._stream(run, value)
                )
            except Exception as exc:  # The client must see a failed pipeline, not a hang.
                _log.exception("pipeline failed inside the engine")
                terminating = PSErrorRecord(
                    message=str(exc),
                    category="NotSpecified",
                    fully_qualified_error_id=type(exc).__name__,
                    exception_type="System.Management.Automation.RuntimeException",
                )
                break
            outputs.extend(result.output)
            errors.extend(result.errors)
            warnings.extend(result.warnings)
            if result.terminating is not None:
                terminating = result.terminating
                break
        with self._changed:
            run.finished = True
            pipeline = run.pipeline
            if not self._closed and pipeline.state == PSInvocationState.Running:
                for value in outputs:
                    pipeline.write_output(value)
                for warning in warnings:
                    pipeline.write_warning(warning)
                for record in errors:
                    pipeline.write_error(
                        _exception(record),
                        _category_info(record),
                        record.target_object,
                        record.fully_qualified_error_id,
                        invocation_info=_invocation_info(record),
                    )
                if terminating is None:
                    pipeline.complete()
                else:
                    # psrpcore 0.3.1 has no public "fail" for server pipelines.
                    pipeline._change_state(PSInvocationState.Failed, error_record(terminating))
            self._changed.notify_all()

    def _stream(self, run: _PipelineRun, value: object) -> None:
        """Send one output object of a running script now (the client receives it while the script runs)."""
        with self._changed:
            if not self._closed and run.pipeline.state == PSInvocationState.Running:
                run.pipeline.write_output(value)
            self._changed.notify_all()

    # -- WinRS operations ---------------------------------------------------------------

    def command(self, request: Request) -> list[ET.Element]:
        line = request.body.find(q("rsp", "CommandLine"))
        if line is None:
            raise invalid_request("The Command request lacks rsp:CommandLine.")
        command_id = line.get("CommandId") or str(uuid.uuid4()).upper()
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError as exc:
            raise invalid_request("The CommandId is not a GUID.") from exc
        data = b"".join(_b64(node.text or "") for node in line.iterfind(q("rsp", "Arguments")))
        with self._changed:
            self._require_connected()
            self._runs[pipeline_id] = _PipelineRun(ServerPipeline(self._pool, pipeline_id))
            self._feed(pipeline_id, data)
        return command_response(command_id)

    def send(self, request: Request) -> list[ET.Element]:
        with self._changed:
            self._require_connected()
            for stream in request.body.iterfind(f"{q('rsp', 'Send')}/{q('rsp', 'Stream')}"):
                pipeline_id = self._pipeline_id(stream.get("CommandId"))
                self._feed(pipeline_id, _b64(stream.text or ""))
        return simple_response("rsp:SendResponse")

    def _pipeline_id(self, command_id: str | None, *, released: bool = False) -> uuid.UUID | None:
        if not command_id:
            return None
        try:
            pipeline_id = uuid.UUID(command_id)
        except ValueError as exc:
            raise command_not_found() from exc
        if pipeline_id not in self._runs and not (released and pipeline_id in self._released):
            raise command_not_found()
        return pipeline_id

    def _release(self, pipeline_id: uuid.UUID) -> None:
        run = self._runs.pop(pipeline_id, None)
        self._outgoing.pop(pipeline_id, None)
        if run is not None:
            self._released.append(pipeline_id)

    def receive(self, request: Request, budget: int, deadline: float) -> list[ET.Element]:
        desired = request.body.find(f"{q('rsp', 'Receive')}/{q('rsp', 'DesiredStream')}")
        command_id = desired.get("CommandId") if desired is not None else None
        with self._changed:
            target = self._pipeline_id(command_id)
            self.receives_started += 1
            while True:
                self._require_connected(target)
                if request.client_gone():
                    # Nobody would read the answer: end without taking any output, which stays for the next
                    # Receive (ASSUMPTION: as the WinRM service, told by HTTP.sys that the client left).
                    raise operation_timed_out()
                self._drain(budget)
                queue = self._outgoing.get(target, [])
                run = self._runs.get(target) if target is not None else None
                done = run is not None and run.finished and not queue
                if queue or done:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise operation_timed_out()
                self.receives_waiting += 1
                try:
                    self._changed.wait(min(remaining, _GONE_POLL))
                finally:
                    self.receives_waiting -= 1
            response = element("rsp:ReceiveResponse")
            used = 0
            while queue and (used == 0 or used + len(queue[0]) <= budget):
                chunk = queue.pop(0)
                used += len(chunk)
                attrib = {"Name": "stdout"}
                if command_id:
                    attrib["CommandId"] = command_id
                sub(response, "rsp:Stream", attrib, base64.b64encode(chunk).decode("ascii"))
            if command_id and run is not None and run.finished and not queue:
                # Windows sends no CommandState while a pipeline runs, and Done with ExitCode 0 at its end.
                state = sub(response, "rsp:CommandState", {"CommandId": command_id, "State": STATE_DONE})
                sub(state, "rsp:ExitCode", text="0")
                if target is not None:
                    # The client has everything: release the pipeline without waiting for a Signal Terminate
                    # (pypsrp's invoke() sends none; Windows answers Command + one Receive with Done:
                    # pypsrp tests/tests_pypsrp/responses/test_psrp_run_protocol_version_2.3.yml).
                    self._release(target)
        return [response]

    def _drain(self, budget: int) -> None:
        """Move psrpcore's pending output into per-pipeline queues, cut to fit ``budget``."""
        while (payload := self._pool.data_to_send(amount=budget)) is not None:
            self._outgoing.setdefault(payload.pipeline_id, []).append(bytes(payload.data))

    def signal(self, request: Request) -> list[ET.Element]:
        signal = request.body.find(q("rsp", "Signal"))
        if signal is None:
            raise invalid_request("The Signal request lacks rsp:Signal.")
        # Compared case-insensitively: pypsrp sends .../signal/Terminate, pywinrm .../terminate.
        code = (signal.findtext(q("rsp", "Code")) or "").strip().lower()
        with self._changed:
            self._require_connected()
            pipeline_id = self._pipeline_id(signal.get("CommandId"), released=code == SIGNAL_TERMINATE)
            run = self._runs.get(pipeline_id) if pipeline_id is not None else None
            if run is not None and code in (SIGNAL_PS_CTRL_C, SIGNAL_PS_CRTL_C, SIGNAL_CTRL_C):
                run.cancel.set()
                if run.pipeline.state == PSInvocationState.Running:
                    run.pipeline.stop()
                run.finished = True
            elif run is not None and code == SIGNAL_TERMINATE and pipeline_id is not None:
                run.cancel.set()
                self._runs.pop(pipeline_id, None)
                self._outgoing.pop(pipeline_id, None)
            self._changed.notify_all()
        return simple_response("rsp:SignalResponse")

    # -- disconnected operations (MS-PSRP 3.1.4.9, 3.1.4.10; MS-WSMV 3.1.4.15-3.1.4.17) -----------------------

    def _require_connected(self, pipeline_id: uuid.UUID | None = None) -> None:
        """Refuse an operation on the disconnected shell, or on one of its commands not yet reconnected (lock held)."""
        run = self._runs.get(pipeline_id) if pipeline_id is not None else None
        if self.state != "Connected" or (run is not None and not run.connected):
            raise shell_disconnected(self.shell_id)

    def disconnect(self, idle_timeout: float | None) -> None:
        """Suspend the pool's streams; its pipelines run on and their output waits here (BufferMode Block)."""
        with self._changed:
            self.mark_disconnected(idle_timeout)
            for run in self._runs.values():
                run.connected = False
            self._changed.notify_all()  # a held Receive ends without output

    def reconnect(self, command_id: str | None) -> None:
        """The previous client session is back: the shell, or one command (MS-PSRP 3.1.5.3.18)."""
        with self._changed:
            if command_id is None:
                if self.state != "Disconnected":
                    raise shell_not_disconnected(self.shell_id)
                self.mark_connected()
            else:
                if self.state != "Connected":
                    raise shell_disconnected(self.shell_id)
                pipeline_id = self._pipeline_id(command_id)
                if pipeline_id is not None:
                    self._runs[pipeline_id].connected = True
            self._changed.notify_all()

    def connect(self, request: Request) -> list[ET.Element]:
        """A new client session takes the pool over (MS-PSRP 3.1.4.10.3), or one of its commands."""
        connect = request.body.find(q("rsp", "Connect"))
        if connect is None:
            raise invalid_request("The Connect request lacks rsp:Connect.")
        command_id = connect.get("CommandId")
        with self._changed:
            if command_id:
                self.reconnect(command_id)
                return [element("rsp:ConnectResponse")]
            if self.state != "Disconnected":
                raise shell_not_disconnected(self.shell_id)
            data = connect.find(f"{{{NS['ps']}}}connectXml")
            if data is None or not data.text:
                raise invalid_request("The PowerShell Connect request lacks connectXml.")
            self._pool.connect()
            # psrpcore answers a connecting client's SESSION_CAPABILITY with nothing; Windows answers with its own
            # first, then RUNSPACEPOOL_INIT_DATA (pypsrp's recorded test_psrp_disconnected_commands.yml).
            self._pool.prepare_message(self._pool.our_capability)
            self._pool.receive_data(PSRPPayload(_b64(data.text), StreamType.default, None))
            while (event := self._pool.next_event()) is not None:
                self._on_event(event)
            pending = b""
            while (payload := self._pool.data_to_send()) is not None:
                pending += bytes(payload.data)
            first, rest = _split_messages(pending, 2)
            if rest:  # APPLICATION_PRIVATE_DATA: the first Receive brings it
                self._outgoing.setdefault(None, []).append(rest)
            self.session_id = request.session_id
            self.mark_connected()
            self._changed.notify_all()
        response = element("rsp:ConnectResponse")
        sub(
            response,
            "pwsh:connectResponseXml",
            {"xmlns:pwsh": NS["ps"]},
            base64.b64encode(first).decode("ascii"),
        )
        return [response]

    def command_elements(self) -> list[ET.Element]:
        with self._changed:
            commands = []
            for pipeline_id, run in self._runs.items():
                command = element("rsp:Command")
                sub(command, "rsp:CommandId", text=str(pipeline_id).upper())
                sub(command, "rsp:CommandLine")
                state = "Done" if run.finished else "Running"
                sub(command, "rsp:CommandState", text=state)
                commands.append(command)
            return commands

    def close(self) -> None:
        with self._changed:
            self._closed = True
            for run in self._runs.values():
                run.cancel.set()
            self._runs.clear()
            self._outgoing.clear()
            self._changed.notify_all()


def _split_messages(data: bytes, count: int) -> tuple[bytes, bytes]:
    """Split PSRP fragments (MS-PSRP 2.2.4) after the ``count``-th message's end fragment."""
    offset = ended = 0
    while offset + 21 <= len(data) and ended < count:
        length = int.from_bytes(data[offset + 17 : offset + 21], "big")
        if data[offset + 16] & 0x2:  # the End flag
            ended += 1
        offset += 21 + length
    return data[:offset], data[offset:]


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise invalid_request("The PSRP data is not base64.") from exc
