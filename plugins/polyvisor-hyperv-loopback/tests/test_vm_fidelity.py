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


def test_restore_snapshot_of_running_vm_saves_applies_and_restarts(engine: Engine) -> None:
    # NEON Commands/RestoreVMSnapshot.cs ProcessOneOperand.
    host = engine.host
    vm_id = _vm(engine, "r")
    host.set_vm(vm_id, checkpoint_type="Standard")
    host.start_vm(vm_id)
    host.checkpoint_vm(vm_id, "live")  # a Saved checkpoint
    restored = run(engine, ("Restore-VMSnapshot", [("VMName", "r"), ("Name", "live"), ("Confirm", False)]))
    assert restored.terminating is None, restored.terminating
    assert restored.errors == []
    assert host.get_vm(vm_id).state == "Running"  # saved by the apply, started again: it was running
    host.turn_off_vm(vm_id)
    host.checkpoint_vm(vm_id, "cold")  # an Off checkpoint
    host.start_vm(vm_id)
    run(engine, ("Restore-VMSnapshot", [("VMName", "r"), ("Name", "cold"), ("Confirm", False)]))
    assert host.get_vm(vm_id).state == "Off"  # an Off checkpoint leaves the VM off


def test_restore_snapshot_of_paused_vm_leaves_it_saved(engine: Engine) -> None:
    host = engine.host
    vm_id = _vm(engine, "p")
    host.set_vm(vm_id, checkpoint_type="Standard")
    host.start_vm(vm_id)
    host.checkpoint_vm(vm_id, "live")
    host.suspend_vm(vm_id)
    restored = run(engine, ("Restore-VMSnapshot", [("VMName", "p"), ("Name", "live"), ("Confirm", False)]))
    assert restored.terminating is None, restored.terminating
    assert host.get_vm(vm_id).state == "Saved"
