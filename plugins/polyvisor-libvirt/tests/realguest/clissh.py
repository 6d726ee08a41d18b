"""docs/image-to-ssh.md as a script: its console block read into commands and the output each must print, with the
page's example names swapped for the test's own (a ``pvtest-`` VM, a free port, the built cloud image)."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .cloudguest import REPO

PAGE = REPO / "docs" / "image-to-ssh.md"
POLYVISOR = [sys.executable, "-m", "polyvisor.cli"]
# The page's example values, swapped for the test's (longest first, so web.toml goes before web).
PAGE_IMAGE = "/var/lib/libvirt/images/debian-12-genericcloud-amd64.qcow2"
PAGE_KEY = "~/.ssh/id_ed25519.pub"
PAGE_ALICE_KEY = "ssh-ed25519 AAAAC3Nza... alice@laptop"
PAGE_PORT = "2222"
PAGE_VM = "web"


def block(label: str, page: Path = PAGE) -> list[str]:
    """The lines of the fenced block after the MyST target ``(label)=``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=") + 2
    return lines[start : lines.index("```", start)]


@dataclass
class Step:
    """One ``$ command`` of the console block and the lines the page says it prints."""

    argv: list[str]
    expected: list[str]

    def matches(self, output: str) -> bool:
        """Whether ``output`` is the expected lines, ``...`` standing for anything."""
        got = output.rstrip("\n").splitlines()
        if len(got) != len(self.expected):
            return False
        return all(_pattern(line).fullmatch(actual) for line, actual in zip(self.expected, got, strict=True))


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in line.split("...")))


def steps(lines: list[str], swaps: dict[str, str]) -> list[Step]:
    """The console block's commands (``\\`` continues one) with ``swaps`` applied, and their expected output."""
    found: list[Step] = []
    command: list[str] = []
    for line in lines:
        text = _swap(line, swaps)
        if command and command[-1].endswith("\\"):
            command[-1] = command[-1][:-1]
            command.append(text.strip())
            if not text.endswith("\\"):
                found.append(Step(shlex.split(" ".join(command)), []))
            continue
        if text.startswith("$ "):
            command = [text[2:]]
            if not text.endswith("\\"):
                found.append(Step(shlex.split(text[2:]), []))
            continue
        found[-1].expected.append(text)
    return found


def _swap(text: str, swaps: dict[str, str]) -> str:
    for old in sorted(swaps, key=len, reverse=True):
        text = re.sub(rf"(?<![\w./-]){re.escape(old)}(?![\w-])", swaps[old].replace("\\", "\\\\"), text)
    return text


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def polyvisor(argv: list[str]) -> list[str]:
    """A documented ``polyvisor ...`` command as this environment runs it (the venv's interpreter)."""
    assert argv[0] == "polyvisor", argv
    return [*POLYVISOR, *argv[1:]]


def ssh(argv: list[str], private_key: Path, known_hosts: Path) -> list[str]:
    """A documented ``ssh ...`` command with the test's key, a throwaway known_hosts and no prompts."""
    assert argv[0] == "ssh", argv
    options = [
        "-i", str(private_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
        "-o", "ConnectTimeout=30", "-F", "/dev/null",
    ]  # fmt: skip
    return ["ssh", *options, *argv[1:]]


@dataclass
class Ran:
    """A finished command: its output and how long it took."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        """For assertion messages."""
        return f"{shlex.join(self.argv)}\nexit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def start(argv: list[str], cwd: Path | None = None) -> tuple[subprocess.Popen[str], float]:
    """Start a command (in ``cwd``); collect it with :func:`finish`."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    return process, time.monotonic()


def finish(started: tuple[subprocess.Popen[str], float], argv: list[str], timeout: float) -> Ran:
    """Wait for a started command (killed at ``timeout``)."""
    process, began = started
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        err += f"\n(killed after {timeout:g} s)"
    return Ran(argv, process.returncode, out, err, time.monotonic() - began)


def run(argv: list[str], timeout: float = 120.0) -> Ran:
    """Run a command to its end."""
    return finish(start(argv), argv, timeout)
