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


def test_turn_off_a_saved_vm_discards_its_saved_state(engine: Engine) -> None:
    # NEON VirtualMachine.cs transition map: VirtualMachineAction.Stop is allowed from Saved.
    host = engine.host
    vm_id = _vm(engine, "s")
    host.start_vm(vm_id)
    host.save_vm(vm_id)
    result = run(engine, ("Stop-VM", [("Name", "s"), ("TurnOff", None), ("Force", None)]))
    assert result.terminating is None
    assert result.errors == []
    assert host.get_vm(vm_id).state == "Off"
