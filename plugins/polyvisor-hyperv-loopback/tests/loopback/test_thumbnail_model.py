"""Hyper-V's screens through WMI: video heads, the VMs' settings, and GetVirtualSystemThumbnailImage."""

from __future__ import annotations

import io
import struct

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

NS = "-Namespace root\\virtualization\\v2"
THUMBNAIL = (
    "$vssd = @(Get-CimInstance {ns} -ClassName Msvm_VirtualSystemSettingData | "
    "Where-Object -Property ElementName -EQ -Value '{name}' | "
    "Where-Object -Property VirtualSystemType -EQ -Value '{kind}')\n"
    "$svc = Get-CimInstance {ns} -ClassName Msvm_VirtualSystemManagementService\n"
    "$a = @{{ TargetSystem = $vssd[0]; WidthPixels = [uint16]{w}; HeightPixels = [uint16]{h} }}\n"
    "Invoke-CimMethod -InputObject $svc -MethodName GetVirtualSystemThumbnailImage -Arguments $a"
)
REALIZED = "Microsoft:Hyper-V:System:Realized"


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def _thumbnail(host: HyperVHost, name: str, w: int = 64, h: int = 48, kind: str = REALIZED) -> tuple[int, object]:
    (result,) = _run(host, THUMBNAIL.format(ns=NS, name=name, kind=kind, w=w, h=h))
    return int(result["ReturnValue"]), result["ImageData"]  # type: ignore[index]


def test_a_running_vm_has_a_video_head_and_a_thumbnail_of_many_colours() -> None:
    host = HyperVHost(transition_delay=0)
    _run(host, "New-VM -Name shown; New-VM -Name other; Start-VM -Name shown; Start-VM -Name other")
    heads = _run(host, f"Get-CimInstance {NS} -ClassName Msvm_VideoHead")
    assert len(heads) == 2
    (vm,) = _run(host, "Get-VM -Name shown")
    (head,) = [h for h in heads if str(h["SystemName"]).casefold() == str(vm["Id"]).casefold()]  # type: ignore[index]
    assert (head["CurrentHorizontalResolution"], head["CurrentVerticalResolution"]) == (1024, 768)  # type: ignore[index]
    code, image = _thumbnail(host, "shown", 160, 120)
    assert code == 0
    assert isinstance(image, bytes)
    assert len(image) == 160 * 120 * 2  # RGB 565: one 16-bit word per pixel
    words = set(struct.unpack(f"<{160 * 120}H", image))
    assert len(words) > 2, "the screen is not one colour"
    assert _thumbnail(host, "other", 160, 120)[1] != image, "each VM shows its own screen"
    _run(host, "Suspend-VM -Name shown")
    assert _thumbnail(host, "shown", 160, 120) == (0, image), "a paused VM still shows its last frame"


def test_a_vm_that_is_off_or_a_checkpoint_has_no_thumbnail() -> None:
    host = HyperVHost(transition_delay=0)
    _run(host, "New-VM -Name dark; Checkpoint-VM -Name dark -SnapshotName cp")
    assert _run(host, f"Get-CimInstance {NS} -ClassName Msvm_VideoHead") == []
    assert _thumbnail(host, "dark") == (32775, None)  # Invalid state for this operation
    kinds = {
        str(s["VirtualSystemType"])
        for s in _run(host, f"Get-CimInstance {NS} -ClassName Msvm_VirtualSystemSettingData")
    }  # type: ignore[index]
    assert kinds == {REALIZED, "Microsoft:Hyper-V:Snapshot:Realized"}
    _run(host, "Start-VM -Name dark")
    assert _thumbnail(host, "cp", kind="Microsoft:Hyper-V:Snapshot:Realized")[0] == 32775
    assert _thumbnail(host, "dark", 0, 48) == (32773, None)  # Invalid parameter


def test_other_classes_namespaces_and_methods_are_errors() -> None:
    host = HyperVHost(transition_delay=0)
    with pytest.raises(PipelineStopped, match="Invalid class"):
        _run(host, f"Get-CimInstance {NS} -ClassName Msvm_Nothing")
    with pytest.raises(PipelineStopped, match="Invalid namespace"):
        _run(host, "Get-CimInstance -Namespace root\\nothing -ClassName Msvm_VideoHead")
    with pytest.raises(PipelineStopped, match="Method not found"):
        _run(
            host,
            f"$s = Get-CimInstance {NS} -ClassName Msvm_VirtualSystemManagementService; "
            "Invoke-CimMethod -InputObject $s -MethodName DestroySystem -Arguments @{}",
        )
