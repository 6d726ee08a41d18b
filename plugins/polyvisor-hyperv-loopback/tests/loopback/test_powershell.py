"""The mini PowerShell interpreter: the language subset, loud failures, data never executed."""

from __future__ import annotations

import io

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter, ScriptError
from polyvisor_hyperv_loopback.powershell.values import PSHashtable


def _interp(stdin: bytes = b"") -> tuple[Interpreter, io.StringIO]:
    out = io.StringIO()
    session = Session(HyperVHost(transition_delay=0))
    return Interpreter(session, default_registry(), Console(io.BytesIO(stdin), out)), out


def run(script: str) -> list[object]:
    return _interp()[0].run(script)


def test_literals_operators_and_control_flow() -> None:
    assert run("1 + 2; 'a' + 'b'; \"x$(1+1)y\"; 7 % 4") == [3, "ab", "x2y", 3]
    assert run("if ($null -eq $x) { 'none' } elseif ($true) { 'b' } else { 'c' }") == ["none"]
    assert run("$t = 0; foreach ($i in @(1, 2, 3)) { $t += $i }; $t") == [6]
    assert run("'{0}-{1}' -f 'a', 2") == ["a-2"]
    assert run("-not $false; 'ABC' -eq 'abc'; 3 -gt 2 -and 1 -lt 0") == [True, True, False]
    assert run("@(1, 2) -contains 2; 'vm-1' -like 'VM-*'") == [True, True]


def test_hashtables_index_and_member_assignment() -> None:
    (table,) = run("$h = [ordered]@{ a = 1 }; $h['B'] = 2; $h.c = 3; $h.A = 9; $h")
    assert isinstance(table, PSHashtable)
    assert table.ordered
    assert list(table.items()) == [("a", 9), ("B", 2), ("c", 3)]


def test_try_catch_exposes_error_record() -> None:
    out = run(
        "$ErrorActionPreference = 'Stop'\n"
        "try { Get-VM -Name ghost } catch { $_.Exception.Message; $_.CategoryInfo.Category.ToString(); "
        "$_.FullyQualifiedErrorId; $_.Exception.GetType().FullName; $_.CategoryInfo.TargetName }"
    )
    assert out == [
        'Hyper-V was unable to find a virtual machine with name "ghost".',
        "InvalidArgument",
        "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
        "Microsoft.HyperV.PowerShell.VirtualizationException",
        "ghost",
    ]


def test_non_terminating_without_stop_continues() -> None:
    interp, _ = _interp()
    assert interp.run("Get-VM -Name ghost; 'after'") == ["after"]
    assert len(interp.session.errors) == 1


def test_splatting_call_operator_and_json_roundtrip() -> None:
    out = run(
        "$p = @{ Name = 'n1'; Generation = 2 }; $c = 'New-VM'; $vm = & $c @p\n"
        "$j = ConvertTo-Json -InputObject ([ordered]@{ n = $vm.Name; s = $vm.State; g = $vm.Generation }) -Compress\n"
        "$j; ($j | ConvertFrom-Json).n"
    )
    assert out == ['{"n":"n1","s":3,"g":2}', "n1"]


def test_console_and_base64_builtins() -> None:
    interp, out = _interp(stdin=b"  aGVsbG8=\r\n")
    interp.run(
        "$b = [System.Convert]::FromBase64String([Console]::In.ReadToEnd().Trim())\n"
        "$t = [System.Text.Encoding]::UTF8.GetString($b)\n"
        "[Console]::Out.Write([System.Convert]::ToBase64String([System.Text.Encoding]::UTF8.GetBytes($t + '!')))"
    )
    assert out.getvalue() == "aGVsbG8h"


@pytest.mark.parametrize(
    "payload",
    [
        "'; Remove-VM -Name * -Force; '",
        "$(New-VM -Name pwned)",
        '`$(New-VM -Name pwned)`n; "',
        "line1\nline2; New-VM pwned",
        "\u00e9\u6f22\U0001f600 $env:PATH",
        "A" * 10_000 + "$(New-VM pwned)",
    ],
)
def test_hostile_strings_from_json_stay_data(payload: str) -> None:
    import json

    interp, _ = _interp(stdin=json.dumps({"v": payload}).encode())
    out = interp.run("$o = [Console]::In.ReadToEnd() | ConvertFrom-Json; $o.v; ConvertTo-Json -InputObject $o.v")
    assert out[0] == payload
    assert json.loads(str(out[1])) == payload
    assert interp.session.host.list_vms() == []


def test_unsupported_syntax_fails_loudly() -> None:
    with pytest.raises(ScriptError):
        run("function f { 1 }")
    with pytest.raises(ScriptError):
        run("[System.IO.File]::ReadAllText('x')")
    with pytest.raises(ScriptError):
        run("1 +")  # parse error
    with pytest.raises(PipelineStopped) as info:
        run("Invoke-Expression 'x'")
    assert info.value.record.category == "ObjectNotFound"


def test_throw_is_catchable_and_uncaught_propagates() -> None:
    assert run("try { throw 'boom' } catch { 'caught ' + $_.Exception.Message }") == ["caught boom"]
    with pytest.raises(PipelineStopped):
        run("throw 'boom'")


def test_is_operator_and_writing_a_property_through_psobject_properties() -> None:
    # `-is [type]` and PSPropertyInfo.Value (settable on a note property): what invoke.ps1 uses to send enum
    # names. Windows PowerShell's about_Type_Operators and PSPropertyInfo.Value docs (ledger: fix-ps).
    out = run(
        "New-VM -Name vm1 | Out-Null\n"
        "$row = Get-VM -Name vm1 | Select-Object -Property @('Name', 'State')\n"
        "foreach ($p in $row.PSObject.Properties) {\n"
        "    if ($p.Value -is [System.Enum]) { $p.Value = $p.Value.ToString() }\n"
        "}\n"
        "$row.State; $row.State -is [string]; 3 -is [System.Enum]; 'x' -isnot [int]"
    )
    assert out == ["Off", True, False, True]
