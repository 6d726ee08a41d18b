"""Scripts with a param() block, script blocks run with ``&``, and the .NET calls that read a file in ranges."""

from __future__ import annotations

import base64
import io

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.engine import Engine
from polyvisor_hyperv_loopback.engine_api import CommandSpec
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.hyperv.storage import write_bytes
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter, ScriptError

HOSTILE = "x'; Remove-VM * -Force; $(Stop-Computer) `\"\n\u00e9"
PARAMS = "[CmdletBinding()]\nparam([string]$Path, [long]$Offset = 7, [int]$Count, [switch]$Force)\n"
BOUND = PARAMS + "$null"  # the grammar wants a statement after param()


def _interpreter(host: HyperVHost | None = None) -> Interpreter[Session]:
    session = Session(host or HyperVHost(transition_delay=0))
    return Interpreter(session, default_registry(), Console(io.BytesIO(), io.StringIO()))


def _run(script: str, *arguments: tuple[str | None, object], host: HyperVHost | None = None) -> list[object]:
    return _interpreter(host).run(script, arguments=list(arguments))


def _error(script: str, *arguments: tuple[str | None, object]) -> str:
    with pytest.raises(PipelineStopped) as raised:
        _run(script, *arguments)
    return raised.value.record.fully_qualified_error_id


def test_parameters_bind_by_name_prefix_and_position_with_their_types() -> None:
    body = PARAMS + "$Path; $Offset; $Count; $Force"
    assert _run(body, ("path", HOSTILE), ("Count", "12"), ("Offset", 2**40)) == [HOSTILE, 2**40, 12, False]
    assert _run(body, (None, "p"), (None, "5"), ("Fo", None)) == ["p", 5, 0, True]
    # Unbound: the default, or the type's empty value ([string] is "", never $null).
    assert _run(PARAMS + "$Path -eq ''; $Offset; $Count") == [True, 7, 0]


def test_binding_errors_are_parameter_binding_exceptions() -> None:
    assert _error(BOUND, ("Bogus", 1)).startswith("NamedParameterNotFound")
    assert _error(BOUND, ("Count", "many")).startswith("ParameterArgumentTransformationError")
    assert _error(BOUND, ("Count", 2**31)).startswith("ParameterArgumentTransformationError")
    assert _error(BOUND, ("Path", "a"), ("path", "b")).startswith("ParameterAlreadyBound")
    assert _error("param([string]$Name, [string]$Note) $null", ("N", "x")).startswith("AmbiguousParameter")
    assert _error("param([string]$A) $null", (None, "1"), (None, "2")).startswith("PositionalParameterNotFound")
    with pytest.raises(ScriptError):
        _run("$x = 1", ("A", 1))  # a script without param() would take them as $args, not modelled
    with pytest.raises(ScriptError):
        _run("param([ValidateNotNull()][string]$A) $null", ("A", "x"))  # only type constraints are modelled


def test_a_script_block_made_from_text_runs_in_a_child_scope_with_splatted_arguments() -> None:
    script = (
        "$outer = 'seen'; $text = 'param([string]$Name, [int]$Size) $outer; $Name; $Size * 2; $outer = 1'\n"
        "$block = [System.Management.Automation.ScriptBlock]::Create($text)\n"
        "$arguments = @{ Name = $hostile; Size = '21' }\n"
        "@(& $block @arguments); $outer"
    )
    interpreter = _interpreter()
    interpreter.variables["hostile"] = HOSTILE
    parsed: list[str] = []
    interpreter.on_parse = parsed.append
    assert interpreter.run(script) == ["seen", HOSTILE, 42, "seen"]
    assert all(HOSTILE not in text for text in parsed), "a bound value is never parsed"


def test_a_filestream_reads_ranges_of_a_host_file() -> None:
    host = HyperVHost(transition_delay=0)
    data = bytes(range(256)) * 5
    write_bytes(host, "C:\\Data\\f.bin", data, append=False)
    script = (
        "param([string]$LiteralPath, [long]$Offset, [int]$Count)\n"
        "$s = [System.IO.File]::Open($LiteralPath, 'Open', 'Read', 'ReadWrite')\n"
        "try {\n"
        "  $buffer = [byte[]]::new($Count); $null = $s.Seek($Offset, 'Begin'); $got = 1; $read = 0\n"
        "  while ($read -lt $Count -and $got -gt 0) { $got = $s.Read($buffer, $read, $Count - $read); $read += $got }\n"
        "  $s.Length; $read; [System.Convert]::ToBase64String($buffer, 0, $read); $s.Position\n"
        "} finally { $s.Dispose() }\n"
    )

    def read(offset: int, count: int) -> list[object]:
        return _run(script, ("LiteralPath", "c:\\data\\F.BIN"), ("Offset", offset), ("Count", count), host=host)

    assert read(250, 10) == [1280, 10, base64.b64encode(data[250:260]).decode(), 260]
    assert read(1275, 10) == [1280, 5, base64.b64encode(data[1275:]).decode(), 1280]
    assert read(5000, 4) == [1280, 0, "", 5000]  # past the end: .NET allows the seek, and reads nothing
    with pytest.raises(PipelineStopped) as missing:
        _run(script, ("LiteralPath", "C:\\Data\\none.bin"), ("Offset", 0), ("Count", 1), host=host)
    assert missing.value.record.fully_qualified_error_id == "FileNotFoundException"
    assert 'Exception calling "Open" with "4" argument(s)' in missing.value.record.message
    with pytest.raises(PipelineStopped) as directory:
        _run(script, ("LiteralPath", "C:\\Data"), ("Offset", 0), ("Count", 1), host=host)
    assert directory.value.record.fully_qualified_error_id == "UnauthorizedAccessException"
    with pytest.raises(PipelineStopped) as closed:
        _run("$s = [System.IO.File]::Open('C:\\Data\\f.bin', 'Open', 'Read'); $s.Dispose(); $s.Position", host=host)
    assert closed.value.record.fully_qualified_error_id == "ExceptionWhenGetting"
    with pytest.raises(ScriptError):
        _run("[System.IO.File]::Open('C:\\Data\\f.bin', 'Create', 'Write')", host=host)  # reading only


def test_trim_start_and_end_take_the_characters_of_a_string() -> None:
    zeros = base64.b64encode(bytes(4)).decode()
    assert _run(
        f"'{zeros}'.TrimEnd('=').TrimStart('A').Length; ' x '.TrimEnd(); 'AAB='.TrimEnd('=').TrimStart('A')"
    ) == [
        0,
        " x",
        "B",
    ]


def test_a_psrp_script_command_binds_its_parameters() -> None:
    engine = Engine(HyperVHost(transition_delay=0))
    spec = CommandSpec('param([string]$Name, [int]$N) "$Name/$($N + 1)"', True, [("Name", HOSTILE), ("N", 1)])
    result = engine.invoke_pipeline([spec])
    assert result.terminating is None
    assert result.output == [f"{HOSTILE}/2"]
    assert engine.scripts_run == [spec.name]
