"""Every PowerShell text the backend can send parses cleanly, and carries no value."""

from __future__ import annotations

import base64
import json

import pytest
import tree_sitter  # a dev requirement: without it this module fails to import, and never skips
import tree_sitter_powershell

from polyvisor_hyperv.commands import SWITCH, Request, Script, Step, qualified_name, script_names, script_text
from polyvisor_hyperv.winrm_shell import encode_request, powershell_arguments, runner_script


def _problems(source: str) -> list[str]:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(source.encode("utf-8"))
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.type} at {node.start_point}: {node.text!r}")
        stack.extend(node.children)
    return found


def test_the_parser_catches_errors() -> None:
    assert _problems("foreach ($x in @(1) {")


def test_runner_script_parses() -> None:
    assert _problems(runner_script()) == []


def test_encoded_command_is_the_runner_script() -> None:
    arguments = powershell_arguments()
    assert arguments[:-1] == ("-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand")
    decoded = base64.b64decode(arguments[-1]).decode("utf-16-le")
    assert decoded == runner_script()
    assert _problems(decoded) == []
    # cmd.exe limits a command line to 8191 characters.
    assert len("powershell.exe " + " ".join(arguments)) < 8191


def test_values_travel_on_stdin_only() -> None:
    hostile = "'; Remove-VM * -Force; $(Stop-Computer) `n"
    request = Request((Step("Get-VM", {"Id": hostile}), Step("Set-VM", {"Notes": hostile, "Force": SWITCH}, pipe=True)))
    payload = json.loads(base64.b64decode(encode_request(request)))
    assert payload["steps"][1] == {
        "command": "Hyper-V\\Set-VM",
        "parameters": {"Notes": hostile, "Force": True},
        "pipeInput": True,
    }
    assert all(hostile not in argument for argument in powershell_arguments())


def test_hyperv_cmdlets_travel_module_qualified() -> None:
    # VMware PowerCLI exports the same names; Hyper-V\Get-VM is always Hyper-V's (about_Command_Precedence).
    for name in ("Get-VM", "Get-VMHost", "Checkpoint-VM", "Get-VHD", "New-VHD", "Add-VMDvdDrive", "Get-VMSnapshot"):
        assert qualified_name(name) == f"Hyper-V\\{name}"
    for name in ("Remove-Item", "Select-Object", "Out-Null", "Hyper-V\\Get-VM", "Test-Path"):
        assert qualified_name(name) == name
    request = Request((Step("Get-VM"), Step("Remove-Item", pipe=True)))
    payload = json.loads(base64.b64decode(encode_request(request)))
    assert [step["command"] for step in payload["steps"]] == ["Hyper-V\\Get-VM", "Remove-Item"]


def test_bytes_travel_as_base64_data_the_runner_decodes() -> None:
    hostile = b"$(Stop-Computer -Force)'\"\n\x00\xff"
    request = Request((Step("Add-Content", {"LiteralPath": "C:\\s.iso", "Value": hostile, "Encoding": "Byte"}),))
    (step,) = json.loads(base64.b64decode(encode_request(request)))["steps"]
    assert step["parameters"] == {"LiteralPath": "C:\\s.iso", "Encoding": "Byte"}
    assert base64.b64decode(step["bytes"]["Value"]) == hostile
    assert "FromBase64String($property.Value)" in runner_script()


def test_every_fixed_script_parses_and_starts_with_its_param_block() -> None:
    assert script_names(), "the package ships its fixed scripts"
    for name in script_names():
        text = script_text(name)
        assert _problems(text) == [], name
        assert text.startswith("[CmdletBinding()]\nparam("), name


def test_a_script_names_only_the_package_s_own_text_and_its_values_travel_as_parameters() -> None:
    hostile = "C:\\x'; Remove-VM * -Force; $(Stop-Computer) `n.img"
    with pytest.raises(ValueError, match="no fixed script"):
        Script("../invoke")
    with pytest.raises(ValueError, match="no fixed script"):
        Script("watch")  # the event watcher runs its own way, never as a request
    script = Script("read-file", {"LiteralPath": hostile, "Offset": 2**40, "Count": 1})
    (step,) = json.loads(base64.b64decode(encode_request(Request((script,)))))["steps"]
    assert step == {
        "script": script_text("read-file"),
        "parameters": {"LiteralPath": hostile, "Offset": 2**40, "Count": 1},
        "pipeInput": False,
    }
    assert hostile not in step["script"]
    assert "[System.Management.Automation.ScriptBlock]::Create($step.script)" in runner_script()
