"""A file written byte by byte is a virtual hard disk when its bytes are a VHDX ([MS-VHDX]), as Windows opens it:
Get-VHD reads its metadata, New-VHD -ParentPath takes it as a parent, and its hash stays that of its bytes. The
files are written by a real producer of VHDX files, qemu-img (docs/hyperv-fidelity.md, "Storage", names the
sources)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from polyvisor.testing.components import unavailable
from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.hyperv.vhdx import crc32c
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter

FOLDER = "C:\\Images"
CHUNK = 64 * 1024  # what the backend sends per Set-/Add-Content


@pytest.fixture
def host() -> HyperVHost:
    return HyperVHost(transition_delay=0, kvp_delay=0)


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def _qemu_vhdx(directory: Path, name: str, size: str, *options: str) -> tuple[bytes, dict[str, object]]:
    """A VHDX file qemu-img makes, and what ``qemu-img info`` says of it."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        unavailable("qemu-img is not installed (Debian package qemu-utils; scripts/bootstrap installs it)")
    path = directory / name
    subprocess.run([qemu_img, "create", "-q", "-f", "vhdx", *options, str(path), size], check=True)
    info = json.loads(subprocess.run([qemu_img, "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)  # fmt: skip
    return path.read_bytes(), info


def _write_in_chunks(host: HyperVHost, path: str, data: bytes, chunk: int = CHUNK) -> list[bool]:
    """Set-Content, then Add-Content per chunk; after each, whether Get-VHD opens the file."""
    opened = []
    for index in range(0, len(data), chunk):
        cmdlet = "Set-Content" if index == 0 else "Add-Content"
        encoded = base64.b64encode(data[index : index + chunk]).decode()
        _run(host, f"{cmdlet} -LiteralPath '{path}' -Value ([System.Convert]::FromBase64String('{encoded}')) "
                   "-Encoding Byte")  # fmt: skip
        opened.append(bool(_run(host, f"Get-VHD -Path '{path}' -ErrorAction SilentlyContinue")))
    return opened


def _write(host: HyperVHost, path: str, data: bytes) -> None:
    _write_in_chunks(host, path, data, chunk=len(data))


def _get_vhd(host: HyperVHost, path: str) -> object:
    (disk,) = _run(host, f"Get-VHD -Path '{path}'")
    return disk


def test_the_bytes_of_a_vhdx_are_a_disk_once_complete_and_hash_as_written(host: HyperVHost, tmp_path: Path) -> None:
    data, info = _qemu_vhdx(tmp_path, "base.vhdx", "64M")
    path = f"{FOLDER}\\base.vhdx"
    opened = _write_in_chunks(host, path, data)
    regions_end = 4 * 1024 * 1024  # qemu-img's layout: the BAT at 2 MiB, the metadata at 3 MiB, 1 MiB each
    assert opened == [(index + 1) * CHUNK >= regions_end for index in range(len(opened))], (
        "a part that ends before its regions is no disk; the file is one from then on"
    )
    disk = _get_vhd(host, path)
    assert (disk.VhdFormat.name, disk.VhdType.name) == ("VHDX", "Dynamic")  # type: ignore[attr-defined]
    assert disk.Size == info["virtual-size"] == 64 * 1024 * 1024  # type: ignore[attr-defined]
    assert disk.FileSize == len(data)  # type: ignore[attr-defined]
    assert disk.ParentPath is None  # type: ignore[attr-defined]
    (digest,) = _run(host, f"(Get-FileHash -LiteralPath '{path}' -Algorithm SHA256).Hash")
    assert digest == hashlib.sha256(data).hexdigest().upper(), "the hash is the bytes', not a model's"


def test_a_fixed_vhdx_says_fixed(host: HyperVHost, tmp_path: Path) -> None:
    data, _ = _qemu_vhdx(tmp_path, "fixed.vhdx", "8M", "-o", "subformat=fixed")
    _write(host, f"{FOLDER}\\fixed.vhdx", data)
    assert _get_vhd(host, f"{FOLDER}\\fixed.vhdx").VhdType.name == "Fixed"  # type: ignore[attr-defined]


def test_a_vhdx_whose_checksums_fail_or_any_other_file_is_no_disk(host: HyperVHost, tmp_path: Path) -> None:
    data, _ = _qemu_vhdx(tmp_path, "base.vhdx", "64M")
    damaged = bytearray(data)
    for header in (64 * 1024, 128 * 1024):
        damaged[header + 100] ^= 0xFF  # inside each header, outside its checksum field
    _write(host, f"{FOLDER}\\damaged.vhdx", bytes(damaged))
    _write(host, f"{FOLDER}\\named.vhdx", b"vhdxfile" + bytes(3 * CHUNK))
    for name in ("damaged.vhdx", "named.vhdx"):
        with pytest.raises(PipelineStopped):
            _run(host, f"$ErrorActionPreference = 'Stop'; Get-VHD -Path '{FOLDER}\\{name}'")
    assert crc32c(b"123456789") == 0xE3069283  # CRC-32C's check value


def test_a_vhdx_written_as_bytes_is_a_parent_that_never_changes(host: HyperVHost, tmp_path: Path) -> None:
    data, _ = _qemu_vhdx(tmp_path, "base.vhdx", "64M")
    base, child = f"{FOLDER}\\base.vhdx", f"{FOLDER}\\child.vhdx"
    _write(host, base, data)
    _run(host, f"New-VHD -Path '{child}' -ParentPath '{base}' -Differencing")
    made = _get_vhd(host, child)
    assert (made.VhdType.name, made.ParentPath, made.Size) == ("Differencing", base, 64 * 1024 * 1024)  # type: ignore[attr-defined]
    vm = host.lifecycle.new_vm("clone", generation=2)
    _run(host, f"Get-VM -Name clone | Add-VMHardDiskDrive -Path '{child}'")
    host.power.start_vm(vm.id)
    encoded = base64.b64encode(b"x").decode()
    append = (f"$ErrorActionPreference = 'Stop'; Add-Content -LiteralPath '{base}' "
              f"-Value ([System.Convert]::FromBase64String('{encoded}')) -Encoding Byte")  # fmt: skip
    with pytest.raises(PipelineStopped):  # the running VM holds its chain open
        _run(host, append)
    (digest,) = _run(host, f"(Get-FileHash -LiteralPath '{base}' -Algorithm SHA256).Hash")
    assert digest == hashlib.sha256(data).hexdigest().upper()
