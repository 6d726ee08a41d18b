"""``polyvisor console``, ``exec``, ``copy-in`` and ``copy-out`` on memory://, whose guests echo on their console
and run a few programs (``polyvisor.testing.memory_guest``)."""

from __future__ import annotations

import base64
import io
import os
import pty
import sys
import termios
import threading
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor.cli import guestcmds

from .conftest import Lab, Run, as_json

HOSTILE = ["it's", 'say "hi"', "$(touch /tmp/pwned)", "`id`", "a\nb", "ü😀", "-n", "--", "*"]


def test_exec_prints_output_and_exits_with_the_commands_code(run: Run) -> None:
    result = run("exec", "web", "--", "printf", "%s|", *HOSTILE)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == "".join(f"{arg}|" for arg in HOSTILE).encode()
    assert run("exec", "web", "--", "false").exit_code == 1
    assert run("exec", "web", "--", "exit", "42").exit_code == 42


def test_exec_json_carries_binary_output_as_base64(run: Run) -> None:
    result = run("--json", "exec", "web", "--stdin", "--", "cat", input="\u00ff")
    record = as_json(result)
    assert record["exit_code"] == 0
    assert record["stdout"] == "\u00ff"
    result = run("--json", "exec", "web", "--input-file", "-", "--", "cat", input=b"\xff\xfe")  # type: ignore[arg-type]
    assert base64.b64decode(as_json(result)["stdout_b64"]) == b"\xff\xfe"


def test_exec_refuses_a_nul_and_a_stopped_vm(run: Run, lab: Lab) -> None:
    lab.add("off")
    result = run("exec", "off", "--", "true")
    assert result.exit_code == 4
    assert "start it first" in result.stderr
    assert run("exec", "web", "--", "no-such-program").exit_code == 3


def test_exec_guest_credentials_come_only_from_the_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PV_GUEST_PASSWORD", "s3cret-guest")
    result = run("exec", "web", "--user", "root", "--guest-password-env", "PV_GUEST_PASSWORD", "--", "true")
    assert result.exit_code == 8  # memory:// runs commands as its agent's account: guest-login is not declared
    assert "s3cret-guest" not in result.output + result.stderr
    assert run("exec", "web", "--user", "root", "--", "true").exit_code == 2


def test_copy_in_and_out_keep_every_byte(run: Run, tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    assert run("copy-in", "web", str(source), "/tmp/blob").exit_code == 0
    back = tmp_path / "out.bin"
    assert as_json(run("--json", "copy-out", "web", "/tmp/blob", str(back)))["bytes"] == len(data)
    assert back.read_bytes() == data
    assert run("copy-out", "web", "/tmp/absent", str(back)).exit_code == 3


def test_console_script_mode_sends_stdin_and_prints_until_the_marker(run: Run) -> None:
    result = run("console", "web", "--until", "done", input="say done\r")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == b"say done"
    record = as_json(run("--json", "console", "web", "--idle", "0.2", input="abc"))
    assert record["output"] == "abc"
    assert run("console", "web", "--until", "never", "--timeout", "0.3", input="x").exit_code == 5


@pytest.mark.parametrize(("text", "byte"), [("^]", 0x1D), ("^a", 0x01), ("~", 0x7E)])
def test_escape_keys(text: str, byte: int) -> None:
    assert guestcmds.escape_byte(text) == byte


def test_interactive_console_is_raw_leaves_on_the_escape_key_and_restores_the_terminal(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    out = io.BytesIO()
    stdout: Any = type("Out", (), {"buffer": out})()
    monkeypatch.setattr(sys, "stdin", os.fdopen(slave, "rb", buffering=0, closefd=False))
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        with lab.connect() as conn, conn.vm("web").console() as console:
            inside = threading.Thread(target=guestcmds._interactive, args=(console, 0x1D, "web"))
            inside.start()
            polyvisor.testing.eventually(
                lambda: not termios.tcgetattr(slave)[3] & termios.ECHO or None, timeout=5, what="raw mode"
            )
            os.write(master, b"ls\x03\r")  # Ctrl-C reaches the guest: raw mode
            polyvisor.testing.eventually(lambda: out.getvalue() == b"ls\x03\r" or None, timeout=5, what="the echo")
            os.write(master, b"\x1d")
            inside.join(timeout=5)
            assert not inside.is_alive()
            assert not console.ended  # leaving closes nothing by itself; the with block does
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
