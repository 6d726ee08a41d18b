"""A deterministic engine for protocol tests: the protocol layer is under test, not PowerShell."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from psrpcore.types import PSNoteProperty, PSObject, PSType

from polyvisor_hyperv_loopback.engine_api import CommandSpec, InvocationResult, PSErrorRecord

VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"


@PSType(
    ["Microsoft.HyperV.PowerShell.VirtualMachine", "Microsoft.HyperV.PowerShell.VirtualizationObject"],
    adapted_properties=[PSNoteProperty("Name"), PSNoteProperty("State")],
)
class StubVM(PSObject):
    """A VirtualMachine-typed output object."""


def _result(
    output: list[object],
    errors: list[PSErrorRecord] | None = None,
    terminating: PSErrorRecord | None = None,
    warnings: list[str] | None = None,
) -> InvocationResult:
    """Return an InvocationResult with defaults."""
    return InvocationResult(output, errors or [], terminating, warnings or [])


def not_found(name: str) -> PSErrorRecord:
    """Return the error Get-VM writes for a missing VM."""
    return PSErrorRecord(
        message=f'Hyper-V was unable to find a virtual machine with name "{name}".',
        category="InvalidArgument",  # what Hyper-V really reports
        fully_qualified_error_id="InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
        exception_type=VIRTUALIZATION_EXCEPTION,
        target_name=name,
        target_object=name,
        activity="Get-VM",
    )


class StubEngine:
    """Answers a handful of commands; records what it was asked."""

    def __init__(self) -> None:
        self.pipelines: list[list[CommandSpec]] = []
        self.powershell_args: list[list[str]] = []
        self.cancelled = threading.Event()

    def invoke_pipeline(
        self,
        commands: Sequence[CommandSpec],
        input: Sequence[object] = (),
        cancel: threading.Event | None = None,
        emit: Callable[[object], None] | None = None,
    ) -> InvocationResult:
        self.pipelines.append(list(commands))
        first = commands[0]
        params: dict[str | None, Any] = dict(first.parameters)
        if first.name == "Get-VM":
            names = params.get("Name") or ["vm1"]
            names = [names] if isinstance(names, str) else list(names)
            result = _result([])
            for name in names:
                if name.startswith("missing"):
                    result.errors.append(not_found(name))
                    continue
                vm = StubVM()
                vm.Name = name
                vm.State = "Off"
                result.output.append(vm)
            return result
        if first.name == "Start-VM":
            return _result(
                [],
                terminating=PSErrorRecord(
                    message="The operation cannot be performed while the virtual machine is in its current state.",
                    category="InvalidOperation",
                    fully_qualified_error_id="InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM",
                    exception_type=VIRTUALIZATION_EXCEPTION,
                    target_name=str(params.get("Name", "")),
                    target_object=str(params.get("Name", "")),
                ),
            )
        if first.name == "Start-Sleep":  # a cmdlet that takes a while
            time.sleep(float(params["Seconds"]))
            return _result([])
        if first.name == "Get-Big":
            count, size = int(params["Count"]), int(params["Size"])
            return _result([f"{index:06d}" + "x" * (size - 6) for index in range(count)])
        if first.name == "Wait-Cancel":
            if cancel is not None and cancel.wait(30):
                self.cancelled.set()
            return _result(["not cancelled"])
        if first.name == "Write-Warning":
            return _result([], warnings=[str(value) for name, value in first.parameters if name is None])
        if first.name == "Write-Output":
            return _result(list(input) + [value for name, value in first.parameters if name is None])
        if first.name == "Invoke-Expression":  # pypsrp Client.execute_ps
            return _result([f"script:{params['Command']}"])
        if first.is_script:
            return _result([f"script:{first.name}"])
        raise RuntimeError(f"the stub engine does not know {first.name}")

    def run_powershell_exe(
        self,
        args: Sequence[str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        stderr: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> int:
        self.powershell_args.append(list(args))
        lowered = [arg.lower() for arg in args]
        if "-encodedcommand" in lowered:
            script = base64.b64decode(args[lowered.index("-encodedcommand") + 1]).decode("utf-16-le")
            stdout.write(f"ran:{script}\r\n".encode())
            return 0
        if lowered[-1:] == ["-"]:
            data = stdin.read()
            stdout.write(b"stdin:" + data + b"\r\n")
            return 0
        if "-big" in lowered:
            size = int(args[lowered.index("-big") + 1])
            stdout.write(b"o" * size)
            stderr.write(b"e" * 10)
            return 0
        stderr.write(b"unsupported\r\n")
        return 2
