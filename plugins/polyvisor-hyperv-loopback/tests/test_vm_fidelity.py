"""Hyper-V behaviours the host models as Windows does (issue 8): each test names its source.

Sources: NEON = nforgeio/neonSDK Lib/Neon.HyperV/HyperVWmiDriver/Microsoft/HyperV/PowerShell/... (decompiled
cmdlets); DOCS = MicrosoftDocs/windows-powershell-docs docset/winserver2022-ps/Hyper-V/...; WSDOCS =
MicrosoftDocs/windowsserverdocs WindowsServerDocs/virtualization/hyper-v/What-s-new-in-Hyper-V-on-Windows.md.
"""

from __future__ import annotations

import uuid

import pytest

from polyvisor_hyperv_loopback.engine import CommandSpec, Engine, InvocationResult
from polyvisor_hyperv_loopback.errors import HostError
from polyvisor_hyperv_loopback.hyperv import HyperVHost


@pytest.fixture
def engine() -> Engine:
    return Engine(HyperVHost(transition_delay=0))


def run(engine: Engine, *commands: tuple[str, list[tuple[str | None, object]]]) -> InvocationResult:
    return engine.invoke_pipeline([CommandSpec(name, False, params) for name, params in commands])


def _vm(engine: Engine, name: str, generation: int = 2) -> uuid.UUID:
    return engine.host.new_vm(name, generation=generation).id


def test_restart_vm_has_no_type_parameter(engine: Engine) -> None:
    vm_id = _vm(engine, "t")
    engine.host.start_vm(vm_id)
    result = run(engine, ("Restart-VM", [("Name", "t"), ("Type", "Reset"), ("Force", None)]))
    assert result.terminating is not None
    assert result.terminating.fully_qualified_error_id == (
        "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.RestartVM"
    )


def test_confirm_false_does_not_answer_should_continue(engine: Engine, cmdlet: str) -> None:
    # NEON Commands/RemoveVM.cs and RestartVM.cs call ShouldContinue; VirtualizationCmdletBase answers it yes only
    # for -Force (or -AsJob); -Confirm:$false only answers ShouldProcess.
    vm_id = _vm(engine, "c")
    engine.host.start_vm(vm_id)
    refused = run(engine, (cmdlet, [("Name", "c"), ("Confirm", False)]))
    assert refused.terminating is not None
    assert engine.host.get_vm(vm_id).state == "Running"
    done = run(engine, (cmdlet, [("Name", "c"), ("Force", None)]))
    assert done.terminating is None
    assert done.errors == []
