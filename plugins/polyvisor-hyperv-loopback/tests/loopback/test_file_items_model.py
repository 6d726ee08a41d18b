"""The in-memory host's file-system provider cmdlets: directories made, listed and removed, files renamed, drives'
free space, each as Windows has it (docs/hyperv-fidelity.md, "Image folders and uploads", names the sources)."""

from __future__ import annotations

import io

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped, PSErrorRecord
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

VHDS = "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks"


@pytest.fixture
def host() -> HyperVHost:
    return HyperVHost(transition_delay=0, kvp_delay=0)


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def _write(host: HyperVHost, path: str, base64: str) -> None:
    value = f"([System.Convert]::FromBase64String('{base64}'))"
    _run(host, f"Set-Content -LiteralPath '{path}' -Value {value} -Encoding Byte")


def _fails(host: HyperVHost, script: str) -> PSErrorRecord:
    with pytest.raises(PipelineStopped) as info:
        _run(host, "$ErrorActionPreference = 'Stop'; " + script)
    return info.value.record


def test_the_host_paths_exist_empty_and_folders_are_made_listed_and_removed(host: HyperVHost) -> None:
    assert host.virtual_hard_disk_path == VHDS
    assert _run(host, f"Get-ChildItem -LiteralPath '{VHDS}'") == []
    (made,) = _run(host, f"New-Item -ItemType Directory -Path '{VHDS}\\Images'")
    assert (made.Name, made.FullName, made.PSIsContainer) == ("Images", f"{VHDS}\\Images", True)  # type: ignore[attr-defined]
    assert "already exists" in str(_fails(host, f"New-Item -ItemType Directory -Path '{VHDS}\\images'"))
    _write(host, f"{VHDS}\\Images\\a.img", "AQID")
    (folder,) = _run(host, f"Get-ChildItem -LiteralPath '{VHDS}' -Directory")
    assert folder.Name == "Images"  # type: ignore[attr-defined]
    (file,) = _run(host, f"Get-ChildItem -LiteralPath '{VHDS}\\Images' -File")
    assert (file.Name, file.Length, file.PSIsContainer) == ("a.img", 3, False)  # type: ignore[attr-defined]
    assert "has children" in str(_fails(host, f"Remove-Item -LiteralPath '{VHDS}\\Images'"))
    _run(host, f"Remove-Item -LiteralPath '{VHDS}\\Images\\a.img'")
    _run(host, f"Remove-Item -LiteralPath '{VHDS}\\Images'")
    assert _run(host, f"Test-Path -LiteralPath '{VHDS}\\Images'") == [False]


def test_rename_item_renames_in_place_and_never_replaces_or_moves(host: HyperVHost) -> None:
    for name in ("tmp.img", "taken.img"):
        _write(host, f"{VHDS}\\{name}", "Bw==")
    assert "already exists" in str(_fails(host, f"Rename-Item -LiteralPath '{VHDS}\\tmp.img' -NewName 'taken.img'"))
    assert "path or device name" in str(
        _fails(host, f"Rename-Item -LiteralPath '{VHDS}\\tmp.img' -NewName 'D:\\x.img'")
    )
    _run(host, f"Rename-Item -LiteralPath '{VHDS}\\tmp.img' -NewName 'odd $(x) name.img'")
    names = [item.Name for item in _run(host, f"Get-ChildItem -LiteralPath '{VHDS}' -File")]  # type: ignore[attr-defined]
    assert names == ["odd $(x) name.img", "taken.img"]


def test_a_drive_shows_what_its_files_leave_free(host: HyperVHost) -> None:
    (before,) = _run(host, "Get-PSDrive -Name C -PSProvider FileSystem")
    host.add_file(f"{VHDS}\\big.iso", 5 * 1024 * 1024)
    (after,) = _run(host, "Get-PSDrive -Name C -PSProvider FileSystem")
    assert after.Used - before.Used == 5 * 1024 * 1024  # type: ignore[attr-defined]
    assert after.Used + after.Free == host.drive_capacity  # type: ignore[attr-defined]
