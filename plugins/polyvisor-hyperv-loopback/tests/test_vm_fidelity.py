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
        host.add_hard_disk(host.find_vms("pt")[0].id, None, disk_number=7)  # no such physical disk
