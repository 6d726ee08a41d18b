"""Hyper-V behaviours the host models as Windows does (issue 8): each test names its source.

Sources: NEON = nforgeio/neonSDK Lib/Neon.HyperV/HyperVWmiDriver/Microsoft/HyperV/PowerShell/... (decompiled
cmdlets); DOCS = MicrosoftDocs/windows-powershell-docs docset/winserver2022-ps/Hyper-V/...; WSDOCS =
MicrosoftDocs/windowsserverdocs WindowsServerDocs/virtualization/hyper-v/What-s-new-in-Hyper-V-on-Windows.md.
"""

from __future__ import annotations

import uuid

import pytest

from polyvisor_hyperv_loopback.engine import Engine
from polyvisor_hyperv_loopback.engine_api import CommandSpec, InvocationResult
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import HostError


@pytest.fixture
def engine() -> Engine:
    return Engine(HyperVHost(transition_delay=0))


def run(engine: Engine, *commands: tuple[str, list[tuple[str | None, object]]]) -> InvocationResult:
    return engine.invoke_pipeline([CommandSpec(name, False, params) for name, params in commands])


def _vm(engine: Engine, name: str, generation: int = 2) -> uuid.UUID:
    return engine.host.lifecycle.new_vm(name, generation=generation).id


# ----- 2b: Restore-VMSnapshot saves a running/paused VM, applies, restarts it if it was running -----


def test_restore_snapshot_of_running_vm_saves_applies_and_restarts(engine: Engine) -> None:
    # NEON Commands/RestoreVMSnapshot.cs ProcessOneOperand.
    host = engine.host
    vm_id = _vm(engine, "r")
    host.lifecycle.set_vm(vm_id, checkpoint_type="Standard")
    host.power.start_vm(vm_id)
    host.checkpoints.checkpoint_vm(vm_id, "live")  # a Saved checkpoint
    restored = run(engine, ("Restore-VMSnapshot", [("VMName", "r"), ("Name", "live"), ("Confirm", False)]))
    assert restored.terminating is None, restored.terminating
    assert restored.errors == []
    assert host.get_vm(vm_id).state == "Running"  # saved by the apply, started again: it was running
    host.power.turn_off_vm(vm_id)
    host.checkpoints.checkpoint_vm(vm_id, "cold")  # an Off checkpoint
    host.power.start_vm(vm_id)
    run(engine, ("Restore-VMSnapshot", [("VMName", "r"), ("Name", "cold"), ("Confirm", False)]))
    assert host.get_vm(vm_id).state == "Off"  # an Off checkpoint leaves the VM off


def test_restore_snapshot_of_paused_vm_leaves_it_saved(engine: Engine) -> None:
    host = engine.host
    vm_id = _vm(engine, "p")
    host.lifecycle.set_vm(vm_id, checkpoint_type="Standard")
    host.power.start_vm(vm_id)
    host.checkpoints.checkpoint_vm(vm_id, "live")
    host.power.suspend_vm(vm_id)
    restored = run(engine, ("Restore-VMSnapshot", [("VMName", "p"), ("Name", "live"), ("Confirm", False)]))
    assert restored.terminating is None, restored.terminating
    assert host.get_vm(vm_id).state == "Saved"


# ----- 1d: Stop-VM -TurnOff on a Saved VM turns it off, discarding the saved state -----


def test_turn_off_a_saved_vm_discards_its_saved_state(engine: Engine) -> None:
    # NEON VirtualMachine.cs transition map: VirtualMachineAction.Stop is allowed from Saved.
    host = engine.host
    vm_id = _vm(engine, "s")
    host.power.start_vm(vm_id)
    host.power.save_vm(vm_id)
    result = run(engine, ("Stop-VM", [("Name", "s"), ("TurnOff", None), ("Force", None)]))
    assert result.terminating is None
    assert result.errors == []
    assert host.get_vm(vm_id).state == "Off"


# ----- 14: Restart-VM has no -Type on Server 2016-2025 (DOCS Restart-VM.md syntax) -----


def test_restart_vm_has_no_type_parameter(engine: Engine) -> None:
    vm_id = _vm(engine, "t")
    engine.host.power.start_vm(vm_id)
    result = run(engine, ("Restart-VM", [("Name", "t"), ("Type", "Reset"), ("Force", None)]))
    assert result.terminating is not None
    assert result.terminating.fully_qualified_error_id == (
        "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.RestartVM"
    )


# ----- 12/14: ShouldContinue prompts (Remove-VM, Restart-VM) are answered by -Force only -----


@pytest.mark.parametrize("cmdlet", ["Remove-VM", "Restart-VM"])
def test_confirm_false_does_not_answer_should_continue(engine: Engine, cmdlet: str) -> None:
    # NEON Commands/RemoveVM.cs and RestartVM.cs call ShouldContinue; VirtualizationCmdletBase answers it yes only
    # for -Force (or -AsJob); -Confirm:$false only answers ShouldProcess.
    vm_id = _vm(engine, "c")
    engine.host.power.start_vm(vm_id)
    refused = run(engine, (cmdlet, [("Name", "c"), ("Confirm", False)]))
    assert refused.terminating is not None
    assert engine.host.get_vm(vm_id).state == "Running"
    done = run(engine, (cmdlet, [("Name", "c"), ("Force", None)]))
    assert done.terminating is None
    assert done.errors == []


# ----- 5: network adapters hot add/remove on Generation 2 only (WSDOCS) -----


def test_nic_hot_add_and_remove_need_generation_2(engine: Engine) -> None:
    host = engine.host
    gen1 = _vm(engine, "g1", generation=1)
    host.power.start_vm(gen1)
    added = run(engine, ("Add-VMNetworkAdapter", [("VMName", "g1"), ("Name", "hot")]))
    assert len(added.errors) == 1
    assert [n.name for n in host.get_vm(gen1).config.network_adapters] == ["Network Adapter"]
    removed = run(engine, ("Get-VMNetworkAdapter", [("VMName", "g1")]), ("Remove-VMNetworkAdapter", []))
    assert len(removed.errors) == 1
    assert len(host.get_vm(gen1).config.network_adapters) == 1
    gen2 = _vm(engine, "g2")
    host.power.start_vm(gen2)
    assert run(engine, ("Add-VMNetworkAdapter", [("VMName", "g2"), ("Name", "hot")])).errors == []
    assert run(engine, ("Remove-VMNetworkAdapter", [("VMName", "g2"), ("Name", "hot")])).errors == []
    assert [n.name for n in host.get_vm(gen2).config.network_adapters] == ["Network Adapter"]


# ----- 6: -Name on Get-/Remove-VMNetworkAdapter is a case-insensitive wildcard; no match throws -----


def test_nic_name_is_a_case_insensitive_wildcard(engine: Engine) -> None:
    # NEON Commands/ParameterResolvers.cs FilterNetworkAdaptersByName; CmdletErrorMessages.resx
    # VMNetworkAdapter_NoneFound.
    host = engine.host
    vm_id = _vm(engine, "n")
    host.network.add_network_adapter(vm_id, "Lan [1]", None)
    host.network.add_network_adapter(vm_id, "lan-2", None)
    wild = run(engine, ("Get-VMNetworkAdapter", [("VMName", "n"), ("Name", "LAN*")]))
    assert sorted(o.Name for o in wild.output) == ["Lan [1]", "lan-2"]  # type: ignore[attr-defined]
    literal = run(engine, ("Get-VMNetworkAdapter", [("VMName", "n"), ("Name", "lan `[1`]")]))
    assert [o.Name for o in literal.output] == ["Lan [1]"]  # type: ignore[attr-defined]
    for cmdlet in ("Get-VMNetworkAdapter", "Remove-VMNetworkAdapter"):
        missing = run(engine, (cmdlet, [("VMName", "n"), ("Name", "nothing*")]))
        assert missing.terminating is not None, cmdlet
        assert missing.terminating.category == "ObjectNotFound"
        assert missing.terminating.fully_qualified_error_id.startswith("ObjectNotFound,")
        assert "No network adapter was found with the given criteria." in missing.terminating.message
    run(engine, ("Remove-VMNetworkAdapter", [("VMName", "n"), ("Name", "LAN-2")]))
    assert sorted(n.name for n in host.get_vm(vm_id).config.network_adapters) == ["Lan [1]", "Network Adapter"]


# ----- 9: pass-through disks: Path is the disk's friendly name, DiskNumber its number -----


def test_pass_through_disk_has_a_disk_number_and_a_friendly_name(engine: Engine) -> None:
    # NEON HardDiskDrive.cs (Path, DiskNumber); Commands/AddVMHardDiskDrive.cs -DiskNumber (AttachedDiskType.Physical).
    host = engine.host
    host.add_physical_disk(2, "Disk 2 2.00 GB Bus 0 Lun 0 Target 2")
    _vm(engine, "pt")
    added = run(engine, ("Add-VMHardDiskDrive", [("VMName", "pt"), ("DiskNumber", 2), ("Passthru", None)]))
    assert added.errors == []
    assert added.terminating is None
    drives = run(engine, ("Get-VMHardDiskDrive", [("VMName", "pt")])).output
    assert [(d.Path, d.DiskNumber) for d in drives] == [  # type: ignore[attr-defined]
        ("Disk 2 2.00 GB Bus 0 Lun 0 Target 2", 2)
    ]
    with pytest.raises(HostError):
        host.drives.add_hard_disk(host.find_vms("pt")[0].id, None, disk_number=7)  # no such physical disk


# ----- 12: Remove-VM merges checkpoint disks in the background, after it returns -----


def test_remove_vm_merges_checkpoint_disks_after_it_returns() -> None:
    # DOCS Remove-VM.md: checkpoints are deleted and merged into the virtual hard disk files after the VM is deleted.
    host = HyperVHost(transition_delay=0, merge_delay=30)
    engine = Engine(host)
    base = host.disks.new_vhd("C:\\VMs\\m.vhdx", 1 << 30).path
    vm_id = _vm(engine, "m")
    host.drives.add_hard_disk(vm_id, base)
    host.checkpoints.checkpoint_vm(vm_id, "one")
    avhdx = host.get_vm(vm_id).config.hard_drives[0].path
    assert avhdx is not None
    assert avhdx.endswith(".avhdx")
    assert run(engine, ("Remove-VM", [("Name", "m"), ("Force", None)])).terminating is None
    assert host.list_vms() == []
    assert host.files.exists(avhdx), "the merge is still running"
    with pytest.raises(HostError) as info:
        host.disks.remove_file(base)  # the merge holds the files open
    assert info.value.exception_type == "System.IO.IOException"
    host.disks.finish_merges()
    assert not host.files.exists(avhdx)
    assert host.files.exists(base)
    host.disks.remove_file(base)
