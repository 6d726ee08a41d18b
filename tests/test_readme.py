"""The README's quick start stays true: its two commands exist, CI runs the second, and its script runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    block = re.search(r"## Quick start.*?```console\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec scripts/test" in ci


def test_the_same_script_drives_libvirt_and_the_loopback_hyperv_host(tmp_path: Path) -> None:
    try:
        from polyvisor_hyperv_loopback import LoopbackHost
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("polyvisor-hyperv-loopback is not installed")
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None
    script = block.group(1)
    password = "readme-" + os.urandom(6).hex()
    with LoopbackHost("Administrator", password, https=True, state_dir=tmp_path) as host:
        # The README names the default port and state directory; point the script at this host's instead.
        script = script.replace("127.0.0.1:5986", f"127.0.0.1:{host.port}")
        script = script.replace("/tmp/hvhost/tls/ca.pem", str(host.ca_path))
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "POLYVISOR_HYPERV_HOST_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.endswith("stopped {'team': 'infra'}") for line in lines)
    assert password not in done.stdout + done.stderr
