"""What cmd.exe does with a WinRS command line: its length limit, a few built-ins, powershell.exe."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from polyvisor_hyperv_loopback.engine_api import PowerShellExe

from .process_io import InputPipe, OutputPipe

_log = logging.getLogger(__name__)

#: cmd.exe refuses longer command lines (including the program name).
CMD_LINE_LIMIT = 8191

_TOO_LONG = "The command line is too long.\r\n"
_NOT_RECOGNIZED = (
    "'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
)


@dataclass
class ProcessIO:
    """The standard streams of one emulated process."""

    stdin: InputPipe
    stdout: OutputPipe
    stderr: OutputPipe
    encoding: str = "utf-8"
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the process is ended from outside (the WinRS Terminate or Ctrl+C signal)."""

    def out(self, text: str) -> None:
        """Write text to stdout in the shell's code page."""
        self.stdout.write(text.encode(self.encoding, errors="replace"))

    def err(self, text: str) -> None:
        """Write text to stderr in the shell's code page."""
        self.stderr.write(text.encode(self.encoding, errors="replace"))


def split_command_line(line: str) -> list[str]:
    """Split like CommandLineToArgvW / the MSVC runtime (backslash and quote rules)."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have_arg = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            start = i
            while i < len(line) and line[i] == "\\":
                i += 1
            count = i - start
            if i < len(line) and line[i] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i += 1
                have_arg = True
                continue
            current.append("\\" * count)
            have_arg = True
            continue
        if char == '"':
            if in_quotes and i + 1 < len(line) and line[i + 1] == '"':
                current.append('"')
                i += 2
                continue
            in_quotes = not in_quotes
            have_arg = True
            i += 1
            continue
        if char in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(current))
                current, have_arg = [], False
            i += 1
            continue
        current.append(char)
        have_arg = True
        i += 1
    if have_arg:
        args.append("".join(current))
    return args


def _program_name(token: str) -> str:
    base = token.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    for suffix in (".exe", ".com"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _split_first_word(line: str) -> tuple[str, str]:
    """Return cmd.exe's idea of the program token and the rest of the line."""
    stripped = line.lstrip(" \t")
    if stripped.startswith('"'):
        end = stripped.find('"', 1)
        if end == -1:
            return stripped[1:], ""
        return stripped[1:end], stripped[end + 1 :]
    for index, char in enumerate(stripped):
        if char in " \t" or (char in "/." and index > 0 and stripped[:index].lower() == "echo"):
            return stripped[:index], stripped[index:]
    return stripped, ""


def run_command_line(line: str, stdio: ProcessIO, powershell: PowerShellExe, user: str) -> int:
    """Run one command line the way ``cmd.exe /c`` would; return the exit code."""
    if len(line) > CMD_LINE_LIMIT:
        stdio.err(_TOO_LONG)
        return 1
    word, rest = _split_first_word(line)
    name = _program_name(word)
    if not name:
        return 0
    if name == "cmd":
        argv = rest.lstrip()
        if argv[:2].lower() in ("/c", "/k"):
            return run_command_line(argv[2:], stdio, powershell, user)
        return 0
    if name == "echo":
        text = rest[1:] if rest[:1] in (" ", ".", "/") else rest
        stdio.out(text + "\r\n")
        return 0
    if name == "exit":
        args = split_command_line(rest)
        if args and args[0].lower() == "/b":
            args = args[1:]
        try:
            return int(args[0]) if args else 0
        except ValueError:
            return 0
    if name == "hostname":
        stdio.out(socket.gethostname().split(".")[0] + "\r\n")
        return 0
    if name == "whoami":
        stdio.out(f"{socket.gethostname().split('.')[0].lower()}\\{user.lower()}\r\n")
        return 0
    if name == "powershell":
        try:
            return powershell.run_powershell_exe(
                split_command_line(rest),
                cast(BinaryIO, stdio.stdin),
                cast(BinaryIO, stdio.stdout),
                cast(BinaryIO, stdio.stderr),
                stdio.cancel,
            )
        except Exception as exc:  # The host must answer even when the engine breaks.
            _log.exception("powershell.exe emulation failed")
            stdio.err(f"{type(exc).__name__}: {exc}\r\n")
            return 1
    stdio.err(_NOT_RECOGNIZED.format(name=word))
    return 1
