"""The real entry points: ``main()`` in-process and ``python -m polyvisor.cli`` as a process, with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from polyvisor.cli import main
from polyvisor.plugins import Plugins

from .conftest import Lab


def test_main_exits_with_the_command_status(plugins: Plugins, lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ok:
        main(["-c", lab.uri(), "--json", "list"], plugins=plugins)
    assert ok.value.code == 0
    assert json.loads(capsys.readouterr().out)["vms"][0]["name"] == "web"
    with pytest.raises(SystemExit) as missing:
        main(["-c", lab.uri(), "show", "nope"], plugins=plugins)
    assert missing.value.code == 3
    assert capsys.readouterr().err.startswith("error: no VM named or with UUID 'nope'")


def test_module_runs_as_a_process() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "polyvisor.cli", "--json", "schemes"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads(ok.stdout)) == {"backends", "failures"}
    failed = subprocess.run(
        [sys.executable, "-m", "polyvisor.cli", "-c", "nosuchdriver:///", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 3
    assert failed.stdout == ""
    assert failed.stderr.startswith("error: no installed backend handles 'nosuchdriver' URIs")
