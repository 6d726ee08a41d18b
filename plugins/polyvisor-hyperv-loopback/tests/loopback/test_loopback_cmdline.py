"""cmd.exe emulation details that the clients cannot observe directly."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import BinaryIO

import pytest

from polyvisor_hyperv_loopback.wire.cmdline import CMD_LINE_LIMIT, ProcessIO, run_command_line, split_command_line
from polyvisor_hyperv_loopback.wire.process_io import InputPipe, OutputPipe


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("-NoProfile -EncodedCommand AAAA", ["-NoProfile", "-EncodedCommand", "AAAA"]),
        ('"a b" c', ["a b", "c"]),
        (r"a\\\"b", [r"a\"b"]),
        (r'"a\\" b', ["a\\", "b"]),
        (r"C:\dir\ x", ["C:\\dir\\", "x"]),
        ('"say ""hi"""', ['say "hi"']),
        ('""', [""]),
        ("  spaced\targs  ", ["spaced", "args"]),
    ],
)
def test_split_command_line_follows_the_msvc_rules(line: str, argv: list[str]) -> None:
    assert split_command_line(line) == argv


class _RecordingPowerShell:
    def __init__(self) -> None:
        self.args: list[str] = []

    def run_powershell_exe(
        self,
        args: Sequence[str],
        stdin: BinaryIO,
        stdout: BinaryIO,
        stderr: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> int:
        self.args = list(args)
        stdout.write(stdin.read())
        return 7


def _stdio() -> ProcessIO:
    changed = threading.Condition()
    return ProcessIO(InputPipe(changed), OutputPipe(changed), OutputPipe(changed))


@pytest.mark.parametrize(
    "program",
    [
        "powershell",
        "PowerShell.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r'"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"',
        "cmd /c powershell",
    ],
)
def test_powershell_is_found_by_any_spelling(program: str) -> None:
    powershell = _RecordingPowerShell()
    stdio = _stdio()
    stdio.stdin.feed(b"input", end=True)

    code = run_command_line(f"{program} -NoProfile -Command -", stdio, powershell, "vagrant")

    assert (code, powershell.args) == (7, ["-NoProfile", "-Command", "-"])
    assert stdio.stdout.take(100) == b"input"


def test_exit_code_and_length_limit() -> None:
    powershell = _RecordingPowerShell()
    assert run_command_line("exit /b 42", _stdio(), powershell, "u") == 42
    stdio = _stdio()
    assert run_command_line("x" * (CMD_LINE_LIMIT + 1), stdio, powershell, "u") == 1
    assert stdio.stderr.take(100) == b"The command line is too long.\r\n"
