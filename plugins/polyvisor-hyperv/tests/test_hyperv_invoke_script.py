"""The backend's invoke.ps1, run by the loopback host's powershell.exe on its in-memory Hyper-V engine."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest

import polyvisor_hyperv

try:
    from polyvisor_hyperv_loopback.engine import Engine
    from polyvisor_hyperv_loopback.hyperv import HyperVHost
except ImportError as error:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip(f"the loopback Hyper-V host is not installed: {error}", allow_module_level=True)

SCRIPT = (Path(polyvisor_hyperv.__file__).parent / "scripts" / "invoke.ps1").read_text(encoding="utf-8")


@pytest.fixture
def engine() -> Engine:
    return Engine(HyperVHost(transition_delay=0))


def _run(engine: Engine, request: object) -> tuple[int, dict[str, object], bytes]:
    encoded = base64.b64encode(SCRIPT.encode("utf-16-le")).decode()
    stdin = io.BytesIO(base64.b64encode(json.dumps(request).encode()))
    out, err = io.BytesIO(), io.BytesIO()
    code = engine.run_powershell_exe(
        ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded],
        stdin,
        out,
        err,
    )
    return code, json.loads(base64.b64decode(out.getvalue())), err.getvalue()


def _step(command: str, parameters: object = None, pipe: bool = False) -> dict[str, object]:
    return {"command": command, "parameters": parameters, "pipeInput": pipe}


def test_invoke_script_creates_starts_and_selects(engine: Engine) -> None:
    code, reply, err = _run(
        engine,
        {
            "steps": [_step("New-VM", {"Name": "vm1", "Generation": 2, "MemoryStartupBytes": 1 << 30})],
            "select": ["Name", "Id", "State"],
        },
    )
    assert code == 0
    assert err == b""
    assert reply["ok"] is True
    (vm,) = reply["output"]  # type: ignore[misc]
    assert vm["Name"] == "vm1"
    # Enums travel by name, as PSRP delivers them: Windows PowerShell 5.1's ConvertTo-Json alone would write
    # the number, and the numbering of VMState is not the same on every Windows release.
    assert vm["State"] == "Off"
    code, reply, _ = _run(
        engine,
        {
            "steps": [_step("Get-VM", {"Id": vm["Id"]}), _step("Start-VM", {"Passthru": True}, pipe=True)],
            "select": ["State"],
        },
    )
    assert reply["output"] == [{"State": "Running"}]


def test_invoke_script_sends_every_enum_by_name(engine: Engine) -> None:
    _run(engine, {"steps": [_step("New-VM", {"Name": "vm1", "Generation": 2})], "select": None})
    _, reply, _ = _run(engine, {"steps": [_step("Get-VM")], "select": ["Name", "State", "CheckpointType"]})
    assert reply["output"] == [{"Name": "vm1", "State": "Off", "CheckpointType": "Production"}]
    _, reply, _ = _run(engine, {"steps": [_step("Get-VMSwitch")], "select": ["SwitchType"]})
    assert all(isinstance(row["SwitchType"], str) for row in reply["output"])  # type: ignore[union-attr]


def test_invoke_script_reports_hyperv_error(engine: Engine) -> None:
    code, reply, _ = _run(engine, {"steps": [_step("Get-VM", {"Name": "missing"})], "select": None})
    assert code == 0
    assert reply["ok"] is False
    assert reply["error"] == {
        "message": 'Hyper-V was unable to find a virtual machine with name "missing".',
        "exceptionType": "Microsoft.HyperV.PowerShell.VirtualizationException",
        "category": "InvalidArgument",
        "fullyQualifiedErrorId": "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
        "targetName": "missing",
    }


def test_invoke_script_hostile_names_are_data(engine: Engine) -> None:
    hostile = "x'; Remove-VM -Name * -Force; $(Stop-VM a) `\"\n\u00e9\u6f22"
    _code, reply, _ = _run(engine, {"steps": [_step("New-VM", {"Name": hostile[:90]})], "select": ["Name"]})
    assert reply["ok"] is True
    assert reply["output"] == [{"Name": hostile[:90]}]
    _, listing, _ = _run(engine, {"steps": [_step("Get-VM")], "select": ["Name"]})
    assert listing["output"] == [{"Name": hostile[:90]}]


def test_an_unreadable_reply_shows_the_clixml_errors_as_plain_lines(engine: Engine) -> None:
    # invoke.ps1 dies before printing its JSON (its stdin is not base64): powershell.exe -EncodedCommand, with
    # stderr redirected, writes the error stream as CLIXML (ConsoleHost ErrorFormat; ledger draft row 13).
    from polyvisor.errors import BackendError
    from polyvisor_hyperv.winrm_shell import _decode_reply, powershell_arguments

    out, err = io.BytesIO(), io.BytesIO()
    code = engine.run_powershell_exe(list(powershell_arguments()), io.BytesIO(b"%not base64%"), out, err)
    assert err.getvalue().startswith(b"#< CLIXML")
    with pytest.raises(BackendError) as info:
        _decode_reply(out.getvalue(), err.getvalue(), code, host="hv")
    message = str(info.value)
    assert 'Exception calling "FromBase64String"' in message
    assert "_x000D_" not in message
    assert "<S S=" not in message
    assert "CLIXML" not in message
