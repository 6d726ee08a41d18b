"""The engine: PSRP pipelines and powershell.exe runs."""

from __future__ import annotations

import base64
import io

import pytest

from polyvisor_hyperv_loopback.engine import Engine
from polyvisor_hyperv_loopback.engine_api import CommandSpec
from polyvisor_hyperv_loopback.hyperv import HyperVHost


@pytest.fixture
def engine() -> Engine:
    return Engine(HyperVHost(transition_delay=0))


def test_pipeline_terminating_and_non_terminating(engine: Engine) -> None:
    result = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Name", "nope")])])
    assert result.terminating is None
    assert len(result.errors) == 1
    result = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Name", "nope"), ("ErrorAction", "Stop")])])
    assert result.terminating is not None
    assert result.terminating.fully_qualified_error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    bad = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Bogus", 1)])])
    assert bad.terminating is not None
    assert bad.terminating.fully_qualified_error_id.startswith("NamedParameterNotFound,")
    missing = engine.invoke_pipeline([CommandSpec("Format-Disk", False, [])])
    assert missing.terminating is not None
    assert missing.terminating.category == "ObjectNotFound"


def test_pipeline_objects_flow_and_warn_when_already_in_state(engine: Engine) -> None:
    engine.invoke_pipeline([CommandSpec("New-VM", False, [("Name", "w")])])
    started = engine.invoke_pipeline(
        [CommandSpec("Get-VM", False, [("Name", "w")]), CommandSpec("Start-VM", False, [("Passthru", None)])]
    )
    assert str(started.output[0].State) != ""
    assert started.output[0].State.name == "Running"
    again = engine.invoke_pipeline([CommandSpec("Start-VM", False, [("Name", "w")])])
    assert again.errors == []
    assert again.warnings == ["The virtual machine 'w' is already in the specified state."]


def test_remove_vm_needs_force(engine: Engine) -> None:
    # Remove-VM's ShouldContinue is answered by -Force only, not by -Confirm:$false (NEON Commands/RemoveVM.cs).
    engine.invoke_pipeline([CommandSpec("New-VM", False, [("Name", "r")])])
    refused = engine.invoke_pipeline([CommandSpec("Remove-VM", False, [("Name", "r")])])
    assert refused.terminating is not None
    refused = engine.invoke_pipeline([CommandSpec("Remove-VM", False, [("Name", "r"), ("Confirm", False)])])
    assert refused.terminating is not None
    ok = engine.invoke_pipeline([CommandSpec("Remove-VM", False, [("Name", "r"), ("Force", None)])])
    assert ok.terminating is None
    assert engine.host.list_vms() == []


def test_firmware_gen1_error_and_checkpoint_objects(engine: Engine) -> None:
    engine.invoke_pipeline([CommandSpec("New-VM", False, [("Name", "g1")])])
    result = engine.invoke_pipeline([CommandSpec("Get-VMFirmware", False, [("VMName", "g1")])])
    assert (
        result.errors[0].fully_qualified_error_id
        == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVMFirmware"
    )
    engine.invoke_pipeline([CommandSpec("Checkpoint-VM", False, [("Name", "g1"), ("SnapshotName", "s")])])
    snaps = engine.invoke_pipeline([CommandSpec("Get-VMSnapshot", False, [("VMName", "g1")])])
    assert [s.Name for s in snaps.output] == ["s"]
    assert snaps.output[0].PSTypeNames[0] == "Microsoft.HyperV.PowerShell.VMSnapshot"


def test_powershell_exe_uncaught_error_is_clixml_on_stderr(engine: Engine) -> None:
    encoded = base64.b64encode("Get-VM -Name nope -ErrorAction Stop".encode("utf-16-le")).decode()
    out, err = io.BytesIO(), io.BytesIO()
    code = engine.run_powershell_exe(["-EncodedCommand", encoded], io.BytesIO(), out, err)
    assert code == 1
    assert err.getvalue().startswith(b"#< CLIXML")
    assert b"InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM" in err.getvalue()


def test_powershell_exe_command_and_unknown_flag(engine: Engine) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    assert engine.run_powershell_exe(["-Command", "'a' + 'b'"], io.BytesIO(), out, err) == 0
    assert out.getvalue() == b"ab\r\n"
    assert engine.run_powershell_exe(["-Bogus"], io.BytesIO(), io.BytesIO(), err) == 1


def test_get_vmsnapshot_by_id_alone(engine: Engine) -> None:
    # Get-VMSnapshot [-Id] <Guid> is a parameter set of its own: the Id is the checkpoint's, not a VM's.
    engine.invoke_pipeline([CommandSpec("New-VM", False, [("Name", "byid")])])
    vm = engine.host.find_vms("byid")[0]
    first = engine.host.checkpoints.checkpoint_vm(vm.id, "same")
    engine.host.checkpoints.checkpoint_vm(vm.id, "same")
    result = engine.invoke_pipeline([CommandSpec("Get-VMSnapshot", False, [("Id", str(first.id))])])
    assert result.terminating is None, result.terminating
    assert [(snap.Id, snap.Name) for snap in result.output] == [(first.id, "same")]  # type: ignore[attr-defined]
    removed = engine.invoke_pipeline(
        [
            CommandSpec("Get-VMSnapshot", False, [("Id", str(first.id))]),
            CommandSpec("Remove-VMSnapshot", False, []),
        ]
    )
    assert removed.terminating is None, removed.terminating
    assert [snap.name for snap in engine.host.checkpoints.find_snapshots(vm.id)] == ["same"]
    unknown = engine.invoke_pipeline([CommandSpec("Get-VMSnapshot", False, [("Id", str(vm.id))])])
    assert unknown.terminating is not None or unknown.errors


def test_a_common_parameter_given_twice_is_a_binding_error(engine: Engine) -> None:
    # PowerShell binds common parameters like any other: -ErrorAction twice is ParameterAlreadyBound.
    result = engine.invoke_pipeline(
        [CommandSpec("Get-VM", False, [("ErrorAction", "SilentlyContinue"), ("ErrorAction", "Stop")])]
    )
    assert result.terminating is not None
    assert result.terminating.fully_qualified_error_id.startswith("ParameterAlreadyBound,")


def test_stop_vm_without_force_fails_when_the_guest_has_no_shutdown_service(engine: Engine) -> None:
    # Stop-VM asks "turn it off instead?"; a session that cannot prompt fails, and -Force answers yes.
    vm = engine.host.lifecycle.new_vm("mute")
    engine.host.power.start_vm(vm.id)
    engine.host.guests.set_guest(vm.id, "no-shutdown-service")
    stop = [CommandSpec("Get-VM", False, [("Name", "mute")]), CommandSpec("Stop-VM", False, [])]
    result = engine.invoke_pipeline(stop)
    assert result.errors or result.terminating is not None
    record = result.errors[0] if result.errors else result.terminating
    assert record is not None
    assert "does not support user interaction" in record.message
    assert record.fully_qualified_error_id == "HostException,Microsoft.HyperV.PowerShell.Commands.StopVM"
    assert engine.host.get_vm(vm.id).state == "Running"
    forced = [*stop[:1], CommandSpec("Stop-VM", False, [("Force", None)])]
    assert engine.invoke_pipeline(forced).terminating is None
    assert engine.host.get_vm(vm.id).state == "Off"


def test_module_qualified_names_reach_hyperv_even_when_powercli_hides_them(engine: Engine) -> None:
    from polyvisor_hyperv_loopback.cmdlets.powercli import import_powercli

    engine.invoke_pipeline([CommandSpec("Hyper-V\\New-VM", False, [("Name", "q")])])
    import_powercli(engine.registry)
    # Unqualified, the module imported last wins (about_Command_Precedence): PowerCLI's Get-VM, not connected.
    hidden = engine.invoke_pipeline([CommandSpec("Get-VM", False, [])])
    assert hidden.terminating is not None
    assert hidden.terminating.fully_qualified_error_id.startswith("Core_BaseCmdlet_NotConnectedError,VMware.")
    for name in ("Hyper-V\\Get-VM", "hyper-v\\get-vm"):
        found = engine.invoke_pipeline([CommandSpec(name, False, [("Name", "q")])])
        assert found.terminating is None
        assert [vm.Name for vm in found.output] == ["q"]
    # A qualifier naming a module that does not export the command: the command is not found.
    for name in ("VMware.Nope\\Get-VM", "Hyper-V\\Select-Object", "Microsoft.PowerShell.Utility\\Get-VM"):
        missing = engine.invoke_pipeline([CommandSpec(name, False, [])])
        assert missing.terminating is not None
        assert missing.terminating.fully_qualified_error_id == "CommandNotFoundException"
        assert missing.terminating.category == "ObjectNotFound"
    # Scripts resolve them alike (the WinRM shell's invoke.ps1 calls `& $step.command`).
    code = engine.run_powershell_exe(
        ["-NonInteractive", "-Command", "Hyper-V\\Get-VM -Name q | Microsoft.PowerShell.Utility\\Select-Object Name"],
        io.BytesIO(b""),
        out := io.BytesIO(),
        io.BytesIO(),
    )
    assert code == 0
    assert b"Name : q" in out.getvalue()


def test_a_missing_vm_by_id_is_a_non_terminating_object_not_found(engine: Engine) -> None:
    # VirtualizationObjectLocator.GetVirtualMachineById inside SelectWithLogging (ledger draft row 10).
    missing = "5a1f0000-0000-0000-0000-000000000001"
    result = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Id", missing)])])
    assert result.terminating is None
    (record,) = result.errors
    assert record.fully_qualified_error_id == "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM"
    assert record.category == "ObjectNotFound"
    assert record.message == f'Hyper-V was unable to find a virtual machine with id "{missing}".'
    assert record.target_object is None
    stopped = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Id", missing), ("ErrorAction", "Stop")])])
    assert stopped.terminating is not None
    assert stopped.terminating.category == "ObjectNotFound"
    # Piped on, nothing reaches the next cmdlet and the script goes on (non-terminating).
    piped = engine.invoke_pipeline(
        [CommandSpec("Get-VM", False, [("Id", missing)]), CommandSpec("Start-VM", False, [])]
    )
    assert piped.terminating is None
    assert [r.category for r in piped.errors] == ["ObjectNotFound"]


def test_a_missing_vm_by_name_is_invalid_argument_for_get_vm_only(engine: Engine) -> None:
    # WriteNonMatchingNameErrors: Get-VM passes WriteWarning (InvalidArgument); every other cmdlet ObjectNotFound.
    got = engine.invoke_pipeline([CommandSpec("Get-VM", False, [("Name", "ghost")])])
    assert [(r.fully_qualified_error_id, r.category) for r in got.errors] == [
        ("InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM", "InvalidArgument")
    ]
    started = engine.invoke_pipeline([CommandSpec("Start-VM", False, [("Name", "ghost")])])
    assert [(r.fully_qualified_error_id, r.category, r.target_name) for r in started.errors] == [
        ("ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.StartVM", "ObjectNotFound", "ghost")
    ]
    assert started.errors[0].message == 'Hyper-V was unable to find a virtual machine with name "ghost".'


def test_vmhost_fully_qualified_domain_name_is_the_domain_or_workgroup(engine: Engine) -> None:
    # VMHost.FullyQualifiedDomainName reads Win32_ComputerSystem.Domain (ledger draft row 11), not host + domain.
    (host,) = engine.invoke_pipeline([CommandSpec("Get-VMHost", False, [])]).output
    assert (host.ComputerName, host.FullyQualifiedDomainName) == ("HV-LOOPBACK", "WORKGROUP")
    joined = Engine(HyperVHost(transition_delay=0, domain="corp.example.test"))
    (host,) = joined.invoke_pipeline([CommandSpec("Get-VMHost", False, [])]).output
    assert host.FullyQualifiedDomainName == "corp.example.test"
