"""docs/remote-image-to-ready.md against the loopback Hyper-V host, over PSRP and over a WinRM shell (issue 16).

The page's Hyper-V console block runs here with its example names swapped for the test's: the example script
uploads a VHDX file that qemu-img wrote (a file on this machine) with ``conn.upload_image`` into the host's virtual
hard disk path, makes a linked clone of it (a differencing VHDX), starts it and waits until its heartbeat answers,
then prints the login its KVP address gives. The test then checks what the host holds, deletes the VM with its
storage and the uploaded image, and checks that both are gone; a failed run is cleaned up the same way.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor.testing.components import unavailable

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "remote-image-to-ready.md"
SCRIPT = ROOT / "docs" / "examples" / "remote_image_to_ready.py"
PAGE_URI = "hyperv://admin@hv01.example.com/"
PAGE_IMAGE = "debian-12-genericcloud-amd64.vhdx"
PAGE_KEY = "~/.ssh/id_ed25519.pub"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0dGVzdGtleQ job@polyvisor-tests"
Recorder = Callable[[str, object], None]
UriFor = Callable[..., str]


def _block(label: str) -> list[str]:
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=") + 2
    return lines[start : lines.index("```", start)]


def _command_and_output(lines: list[str], swaps: dict[str, str]) -> tuple[list[str], list[str]]:
    """The block's one command (``\\`` continues it; a leading ``NAME=value`` dropped) and the lines it prints."""
    text = "\n".join(lines)
    for old in sorted(swaps, key=len, reverse=True):
        text = text.replace(old, swaps[old])
    first, *rest = text.splitlines()
    command = [first.removeprefix("$ ")]
    while command[-1].endswith("\\"):
        command[-1] = command[-1][:-1]
        command.append(rest.pop(0).strip())
    argv = shlex.split(" ".join(command))
    while "=" in argv[0]:
        argv.pop(0)
    return argv, rest


def _matches(expected: list[str], output: str) -> bool:
    got = output.rstrip("\n").splitlines()
    patterns = [re.compile(".*".join(re.escape(part) for part in line.split("..."))) for line in expected]
    return len(got) == len(patterns) and all(p.fullmatch(line) for p, line in zip(patterns, got, strict=True))


def _vhdx(directory: Path) -> Path:
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        unavailable("qemu-img is not installed (Debian package qemu-utils; scripts/bootstrap installs it)")
    path = directory / PAGE_IMAGE
    subprocess.run([qemu_img, "create", "-q", "-f", "vhdx", str(path), "64M"], check=True)
    return path


def _clean(uri: str, password: str, name: str) -> None:
    """Delete the VM with its storage and the uploaded image, whatever is left of them."""
    with polyvisor.connect(uri, password=password) as conn:
        if conn.exists(name):
            vm = conn.vm(name)
            vm.ensure("stopped", force=True)
            vm.delete(storage=True)
        if any(volume.name == PAGE_IMAGE for volume in conn.volumes()):
            conn.delete_volume(PAGE_IMAGE)


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_the_pages_job_runs_against_the_loopback_host(
    loopback_https: Any,
    uri_for: UriFor,
    password: str,
    transport: str,
    tmp_path: Path,
    record_property: Recorder,
) -> None:
    host = loopback_https.engine.host
    uri = uri_for(loopback_https, transport)
    name = f"pvtest-job-{uuid.uuid4().hex[:8]}"
    key = tmp_path / "id_ed25519.pub"
    key.write_text(KEY + "\n")
    image = _vhdx(tmp_path)
    swaps = {PAGE_URI: uri, PAGE_KEY: str(key), "web1": name}
    argv, expected = _command_and_output(_block("remote-image-hyperv"), swaps)
    assert argv[:2] == ["python", "remote_image_to_ready.py"], argv
    began = time.monotonic()
    try:
        ran = subprocess.run(
            [sys.executable, str(SCRIPT), *argv[2:]],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "POLYVISOR_PASSWORD": password},
            check=False,
        )
        seconds = time.monotonic() - began
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert _matches(expected, ran.stdout), (expected, ran.stdout)
        assert password not in ran.stdout + ran.stderr
        record_property(f"{transport}_script_seconds", round(seconds, 1))
        print(f"{transport}: the page's script took {seconds:.1f} s")

        (uploaded,) = [e for e in host.files.entries() if e.path.endswith(f"\\{PAGE_IMAGE}")]
        assert uploaded.data == image.read_bytes(), "the file arrived byte for byte"
        assert (uploaded.vhd_format, uploaded.vhd_type, uploaded.size) == ("VHDX", "Dynamic", 64 * 1024 * 1024)
        (vm,) = [record for record in host.list_vms() if record.name == name]
        (drive,) = vm.config.hard_drives
        clone = host.files.get(drive.path)
        assert (clone.vhd_type, clone.parent_path) == ("Differencing", uploaded.path), "a linked clone of it"
        assert vm.state == "Running"
    finally:
        _clean(uri, password, name)
    paths = [entry.path for entry in host.files.entries()]
    assert uploaded.path not in paths
    assert clone.path not in paths
    assert name not in [record.name for record in host.list_vms()]
