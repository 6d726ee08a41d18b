"""What the wire asks of a PowerShell engine, and the values that cross between them.

The wire (:mod:`.wire`: HTTP, authentication, WS-Management, the WinRS shells, PSRP) imports nothing else of the
host: a PSRP runspace pool hands each pipeline to :meth:`PipelineEngine.invoke_pipeline` as :class:`CommandSpec`
values and serializes the :class:`InvocationResult`; the cmd shell hands ``powershell.exe`` command lines to
:meth:`PowerShellExe.run_powershell_exe` with the process's streams. :class:`~.engine.Engine` implements both;
protocol tests put a stub of their own in its place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

__all__ = ["CommandSpec", "HostEngine", "InvocationResult", "PSErrorRecord", "PipelineEngine", "PowerShellExe"]


@dataclass(frozen=True)
class PSErrorRecord:
    """One System.Management.Automation.ErrorRecord, reduced to what clients read."""

    message: str
    category: str
    fully_qualified_error_id: str
    exception_type: str
    target_name: str = ""
    target_object: object | None = None
    activity: str = ""

    def render(self) -> str:
        """Return the text Windows PowerShell prints for this record on the console."""
        prefix = f"{self.activity} : " if self.activity else ""
        target_type = type(self.target_object).__name__ if self.target_object is not None else ""
        if isinstance(self.target_object, str):
            target_type = "String"
        short_type = self.exception_type.rsplit(".", 1)[-1]
        return (
            f"{prefix}{self.message}\r\n"
            f"    + CategoryInfo          : {self.category}: ({self.target_name}:{target_type}) "
            f"[{self.activity}], {short_type}\r\n"
            f"    + FullyQualifiedErrorId : {self.fully_qualified_error_id}\r\n"
        )


@dataclass(frozen=True)
class CommandSpec:
    """One command of a PSRP pipeline, as psrpcore hands it over."""

    name: str
    is_script: bool
    parameters: Sequence[tuple[str | None, object]] = ()


@dataclass
class InvocationResult:
    """What a pipeline produced: output objects, non-terminating errors and the terminating one, if any."""

    output: list[object]
    errors: list[PSErrorRecord]
    terminating: PSErrorRecord | None
    warnings: list[str] = field(default_factory=list)


class PipelineEngine(Protocol):
    """The part of the engine that runs PSRP pipelines."""

    def invoke_pipeline(
        self,
        commands: Sequence[CommandSpec],
        input: Sequence[object] = (),
        cancel: threading.Event | None = None,
        emit: Callable[[object], None] | None = None,
    ) -> InvocationResult:
        """Run one pipeline; ``cancel`` is the client's stop signal, ``emit`` takes output as a script makes it."""
        ...


class PowerShellExe(Protocol):
    """The part of the engine that plays powershell.exe."""

    def run_powershell_exe(
        self,
        args: Sequence[str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        stderr: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> int:
        """Run ``powershell.exe args`` on the given streams; return its exit code."""
        ...


class HostEngine(PipelineEngine, PowerShellExe, Protocol):
    """What the host needs from an engine (``polyvisor_hyperv_loopback.engine.Engine`` provides it)."""
