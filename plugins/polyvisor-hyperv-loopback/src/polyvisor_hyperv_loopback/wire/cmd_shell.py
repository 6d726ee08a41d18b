"""The WinRS cmd shell (resource URI .../windows/shell/cmd): processes fed by Send, read by Receive."""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
import xml.etree.ElementTree as ET

from polyvisor_hyperv_loopback.engine_api import PowerShellExe

from .cmdline import ProcessIO, run_command_line
from .process_io import InputPipe, OutputPipe
from .shell import (
    SIGNAL_CTRL_BREAK,
    SIGNAL_CTRL_C,
    SIGNAL_TERMINATE,
    STATE_DONE,
    STATE_RUNNING,
    Shell,
    command_response,
    simple_response,
)
from .soap import Request, command_not_found, element, invalid_request, operation_timed_out, q, sub

CMD_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

#: STATUS_CONTROL_C_EXIT, the exit code of a console process stopped by Ctrl+C.
_CTRL_C_EXIT = 0xC000013A

_CODEPAGES = {"65001": "utf-8", "437": "cp437", "850": "cp850", "1252": "cp1252"}


class _Process:
    """One command running in the shell."""

    def __init__(self, command_id: str, encoding: str, console_stdin: bool = False) -> None:
        self.command_id = command_id
        self.changed = threading.Condition()
        self.io = ProcessIO(
            stdin=InputPipe(self.changed, console=console_stdin),
            stdout=OutputPipe(self.changed),
            stderr=OutputPipe(self.changed),
            encoding=encoding,
        )
        self.exit_code: int | None = None

    def start(self, line: str, powershell: PowerShellExe, user: str) -> None:
        def run() -> None:
            code = run_command_line(line, self.io, powershell, user)
            self.finish(code)

        threading.Thread(target=run, name=f"winrs-{self.command_id[:8]}", daemon=True).start()

    def finish(self, code: int) -> None:
        with self.changed:
            if self.exit_code is None:
                self.exit_code = code
            self.changed.notify_all()

    def has_news(self) -> bool:
        return self.exit_code is not None or bool(self.io.stdout.pending() or self.io.stderr.pending())


class CmdShell(Shell):
    """A cmd.exe shell; each Command is a process run by the emulated cmd.exe."""

    def __init__(
        self,
        shell_id: str,
        owner: str,
        client_ip: str,
        body: ET.Element,
        options: dict[str, str],
        powershell: PowerShellExe,
    ) -> None:
        spec = body.find(q("rsp", "Shell"))
        input_streams = output_streams = None
        if spec is not None:
            input_streams = spec.findtext(q("rsp", "InputStreams"))
            output_streams = spec.findtext(q("rsp", "OutputStreams"))
        super().__init__(
            shell_id,
            CMD_RESOURCE_URI,
            owner,
            client_ip,
            (input_streams or "stdin").strip(),
            (output_streams or "stdout stderr").strip(),
        )
        self._encoding = _CODEPAGES.get(options.get("WINRS_CODEPAGE", "437"), "cp437")
        self._powershell = powershell
        self._processes: dict[str, _Process] = {}
        self._lock = threading.Lock()

    def _process(self, command_id: str | None) -> _Process:
        with self._lock:
            process = self._processes.get((command_id or "").upper())
        if process is None:
            raise command_not_found()
        return process

    def command(self, request: Request) -> list[ET.Element]:
        line_element = request.body.find(q("rsp", "CommandLine"))
        if line_element is None:
            raise invalid_request("The Command request lacks rsp:CommandLine.")
        program = (line_element.findtext(q("rsp", "Command")) or "").strip()
        arguments = [node.text or "" for node in line_element.iterfind(q("rsp", "Arguments"))]
        line = " ".join([program, *arguments]) if arguments else program
        command_id = (line_element.get("CommandId") or str(uuid.uuid4())).upper()
        # MS-WSMV 3.1.4.11 Command option WINRS_CONSOLEMODE_STDIN: TRUE gives the process a console as stdin,
        # FALSE a pipe. Absent (pypsrp's WinRS sends none), a pipe: ASSUMPTION.
        console_stdin = request.options.get("WINRS_CONSOLEMODE_STDIN", "FALSE").strip().upper() == "TRUE"
        process = _Process(command_id, self._encoding, console_stdin)
        with self._lock:
            self._processes[command_id] = process
        process.start(line, self._powershell, self.owner)
        return command_response(command_id)

    def send(self, request: Request) -> list[ET.Element]:
        for stream in request.body.iterfind(f"{q('rsp', 'Send')}/{q('rsp', 'Stream')}"):
            process = self._process(stream.get("CommandId"))
            if stream.get("Name", "stdin") != "stdin":
                raise invalid_request(f"The shell has no input stream {stream.get('Name')!r}.")
            try:
                data = base64.b64decode(stream.text or "", validate=True)
            except binascii.Error as exc:
                raise invalid_request("The Send stream is not base64.") from exc
            process.io.stdin.feed(data, end=stream.get("End", "false").lower() == "true")
        return simple_response("rsp:SendResponse")

    def receive(self, request: Request, budget: int, deadline: float) -> list[ET.Element]:
        desired = request.body.find(f"{q('rsp', 'Receive')}/{q('rsp', 'DesiredStream')}")
        process = self._process(desired.get("CommandId") if desired is not None else None)
        with process.changed:
            while not process.has_news():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise operation_timed_out()
                process.changed.wait(remaining)
            response = element("rsp:ReceiveResponse")
            for name, pipe in (("stdout", process.io.stdout), ("stderr", process.io.stderr)):
                chunk = pipe.take(budget)
                budget -= len(chunk)
                if chunk:
                    sub(
                        response,
                        "rsp:Stream",
                        {"Name": name, "CommandId": process.command_id},
                        base64.b64encode(chunk).decode("ascii"),
                    )
            drained = not (process.io.stdout.pending() or process.io.stderr.pending())
            done = process.exit_code is not None and drained
            if done:
                for name in ("stdout", "stderr"):
                    sub(response, "rsp:Stream", {"Name": name, "CommandId": process.command_id, "End": "true"})
            state = sub(
                response,
                "rsp:CommandState",
                {"CommandId": process.command_id, "State": STATE_DONE if done else STATE_RUNNING},
            )
            if done:
                sub(state, "rsp:ExitCode", text=str(process.exit_code))
        return [response]

    def signal(self, request: Request) -> list[ET.Element]:
        signal = request.body.find(q("rsp", "Signal"))
        if signal is None:
            raise invalid_request("The Signal request lacks rsp:Signal.")
        process = self._process(signal.get("CommandId"))
        # Compared case-insensitively: pypsrp sends .../signal/Terminate, pywinrm .../terminate.
        code = (signal.findtext(q("rsp", "Code")) or "").strip().lower()
        process.io.stdin.end()
        if code in (SIGNAL_CTRL_C, SIGNAL_CTRL_BREAK):
            process.io.cancel.set()
            process.finish(_CTRL_C_EXIT)
        elif code == SIGNAL_TERMINATE:
            # Windows ends the process: a cmdlet it was blocked in (Stop-VM waiting for the guest) stops with it.
            process.io.cancel.set()
            with self._lock:
                self._processes.pop(process.command_id, None)
        return simple_response("rsp:SignalResponse")

    def close(self) -> None:
        with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        for process in processes:
            process.io.cancel.set()
            process.io.stdin.end()
