"""The loopback host's PowerShell engine: PSRP pipelines and ``powershell.exe`` runs against one Hyper-V host."""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import BinaryIO, TextIO, cast

from .cmdlets import Registry, Session, default_registry
from .engine_api import CommandSpec, InvocationResult
from .hyperv import HyperVHost
from .powershell.errors import PipelineStopped, PSErrorRecord
from .powershell.exe import StdoutText, format_output, parse_command_line, write_stderr
from .powershell.interpreter import Console, ExitScript, Interpreter, ScriptError

__all__ = ["Engine"]


class Engine:
    """Runs PowerShell for every connection of one loopback host; thread-safe (the host state is shared)."""

    def __init__(self, host: HyperVHost | None = None) -> None:
        self.host = host if host is not None else HyperVHost()
        self.registry: Registry = default_registry()
        self._scripts: deque[str] = deque(maxlen=10_000)
        self._scripts_lock = threading.Lock()

    def _record_script(self, text: str) -> None:
        with self._scripts_lock:
            self._scripts.append(text)

    @property
    def scripts_run(self) -> list[str]:
        """Every PowerShell text this engine parsed as source, oldest first (the last 10,000): PSRP script commands,
        the scripts powershell.exe ran and the script blocks they ran. Cmdlet calls and their parameters are not
        scripts."""
        with self._scripts_lock:
            return list(self._scripts)

    def invoke_pipeline(
        self,
        commands: Sequence[CommandSpec],
        input: Sequence[object] = (),
        cancel: threading.Event | None = None,
        emit: Callable[[object], None] | None = None,
    ) -> InvocationResult:
        """Run one PSRP pipeline; ``cancel`` (optional) is the client's stop signal.

        With ``emit``, a script that ends the pipeline writes each output object there as it produces it (a
        long-running script streams to the client); its objects are then not in the result.
        """
        session = Session(self.host, cancel)
        data: list[object] | None = list(input) if input else None
        terminating: PSErrorRecord | None = None
        try:
            for index, spec in enumerate(commands):
                if spec.is_script:
                    # AddScript + AddParameter: the parameters bind to the script's param() block.
                    interpreter = Interpreter(session, self.registry, on_parse=self._record_script)
                    last = index == len(commands) - 1
                    data = interpreter.run(spec.name, data, emit if last else None, list(spec.parameters))
                    continue
                cmdlet = self.registry.get(spec.name)
                if cmdlet is None:
                    raise PipelineStopped(_not_recognized(spec.name))
                data = cmdlet.run(session, list(spec.parameters), data)
        except PipelineStopped as stop:
            terminating = stop.record
        except ScriptError as exc:
            terminating = exc.record
        except ExitScript:
            pass
        output = [] if terminating is not None else list(data or [])
        return InvocationResult(output, list(session.errors), terminating, list(session.warnings))

    def run_powershell_exe(
        self,
        args: Sequence[str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        stderr: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> int:
        """Emulate ``powershell.exe`` (5.1) started from the WinRM cmd shell; return its exit code."""
        try:
            script, clixml = parse_command_line(args, stdin)
        except ValueError as exc:
            stderr.write((str(exc) + "\r\n").encode("utf-8"))
            return 1
        session = Session(self.host, cancel)
        out_text = io.StringIO()
        # [Console]::Out writes reach stdout at once, as a real process's do (a long-running script streams).
        interpreter = Interpreter(
            session, self.registry, Console(stdin, cast(TextIO, StdoutText(stdout))), self._record_script
        )
        code = 0
        terminating: PSErrorRecord | None = None
        output: list[object] = []
        try:
            output = interpreter.run(script)
        except ExitScript as done:
            code = done.code
        except PipelineStopped as stop:
            terminating = stop.record
        except ScriptError as exc:
            terminating = exc.record
        for item in output:
            out_text.write(format_output(item))
        stdout.write(out_text.getvalue().encode("utf-8"))
        records = [*session.errors, *([terminating] if terminating else [])]
        if terminating is not None:
            code = 1
        write_stderr(stderr, records, session.warnings, clixml)
        return code


def _not_recognized(name: str) -> PSErrorRecord:
    return PSErrorRecord(
        message=f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
        "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
        "and try again.",
        category="ObjectNotFound",
        fully_qualified_error_id="CommandNotFoundException",
        exception_type="System.Management.Automation.CommandNotFoundException",
        target_name=name,
        target_object=name,
    )
