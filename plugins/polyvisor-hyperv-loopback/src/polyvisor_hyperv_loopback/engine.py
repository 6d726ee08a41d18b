"""The loopback host's PowerShell engine: PSRP pipelines and ``powershell.exe`` runs against one Hyper-V host."""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import BinaryIO, TextIO, cast
from xml.sax.saxutils import escape

from psrpcore.types import PSObject

from .cmdlets import Registry, Session, default_registry
from .engine_api import CommandSpec, InvocationResult
from .errors import PipelineStopped, PSErrorRecord
from .hyperv import HyperVHost
from .powershell import Console, ExitScript, Interpreter, ScriptError
from .values import property_names, to_ps_string

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
        """Every PowerShell text this engine parsed as source, oldest first (the last 10,000): PSRP script commands
        and the scripts powershell.exe ran. Cmdlet calls and their parameters are not scripts."""
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
                    self._record_script(spec.name)
                    interpreter = Interpreter(session, self.registry)
                    last = index == len(commands) - 1
                    data = interpreter.run(spec.name, data, emit if last else None)
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
            script, clixml = _parse_arguments(args, stdin)
        except ValueError as exc:
            stderr.write((str(exc) + "\r\n").encode("utf-8"))
            return 1
        self._record_script(script)
        session = Session(self.host, cancel)
        out_text = io.StringIO()
        # [Console]::Out writes reach stdout at once, as a real process's do (a long-running script streams).
        interpreter = Interpreter(session, self.registry, Console(stdin, cast(TextIO, _StdoutText(stdout))))
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
            out_text.write(_format_output(item))
        stdout.write(out_text.getvalue().encode("utf-8"))
        records = [*session.errors, *([terminating] if terminating else [])]
        if terminating is not None:
            code = 1
        _write_stderr(stderr, records, session.warnings, clixml)
        return code


class _StdoutText(io.TextIOBase):
    """[Console]::Out of the emulated powershell.exe: text goes to the process's stdout as it is written (UTF-8)."""

    def __init__(self, stdout: BinaryIO) -> None:
        super().__init__()
        self._stdout = stdout

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._stdout.write(text.encode("utf-8"))
        return len(text)


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


_VALUE_FLAGS = {"executionpolicy", "ep", "inputformat", "outputformat", "windowstyle", "configurationname", "version"}
_SWITCHES = {"noprofile", "nop", "noninteractive", "noni", "nologo", "mta", "sta", "noexit"}


def _parse_arguments(args: Sequence[str], stdin: BinaryIO) -> tuple[str, bool]:
    """Return (script text, whether stderr uses CLIXML) from powershell.exe's command line."""
    items = list(args)
    if items and items[0].casefold().removesuffix(".exe").endswith("powershell"):
        items = items[1:]
    i = 0
    while i < len(items):
        flag = items[i]
        low = flag.lstrip("-/").casefold()
        if not flag.startswith(("-", "/")):
            return " ".join(items[i:]), False
        if low in _SWITCHES:
            i += 1
        elif low in _VALUE_FLAGS:
            i += 2
        elif low in {"encodedcommand", "enc", "e", "ec"}:
            if i + 1 >= len(items):
                raise ValueError(
                    "Cannot process the command because of a missing parameter. Specify a parameter "
                    "of type 'System.String' for '-EncodedCommand'."
                )
            try:
                return base64.b64decode(items[i + 1], validate=True).decode("utf-16-le"), True
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError("Cannot process the encoded command because it is not valid Base64.") from None
        elif low in {"command", "c"}:
            rest = items[i + 1 :]
            if rest == ["-"]:
                return stdin.read().decode("utf-8"), False
            return " ".join(rest), False
        elif low in {"file", "f"}:
            raise ValueError("-File is not supported by the loopback host; use -Command or -EncodedCommand.")
        else:
            raise ValueError(
                f"-{flag.lstrip('-/')} : The term '-{flag.lstrip('-/')}' is not recognized as a powershell.exe "
                "parameter."
            )
    return "", False


def _format_output(item: object) -> str:
    if isinstance(item, PSObject) and not isinstance(item, str | int) and property_names(item):
        lines = [f"{name} : {to_ps_string(item[name])}" for name in property_names(item)]
        return "\r\n" + "\r\n".join(lines) + "\r\n"
    return to_ps_string(item) + "\r\n"


def _clixml_string(text: str, stream: str) -> str:
    body = escape(text).replace("\r", "_x000D_").replace("\n", "_x000A_")
    return f'<S S="{stream}">{body}_x000D__x000A_</S>'


def _write_stderr(stderr: BinaryIO, records: list[PSErrorRecord], warnings: list[str], clixml: bool) -> None:
    if not records and not warnings:
        return
    if not clixml:
        text = "".join(f"WARNING: {w}\r\n" for w in warnings) + "".join(r.render() for r in records)
        stderr.write(text.encode("utf-8"))
        return
    parts = [_clixml_string(w, "warning") for w in warnings]
    for record in records:
        for line in record.render().split("\r\n"):
            if line:
                parts.append(_clixml_string(line, "Error"))
    doc = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        + "".join(parts)
        + "</Objs>"
    )
    stderr.write(doc.encode("utf-8"))
