"""Inside the real tiny guest: its serial console as a stream, commands through the real qemu-guest-agent, files.

One guest for the module (a TCG boot costs about a minute). Its NoCloud seed's ``#!`` user-data (run by the guest's
/init, scripts/build-guest-image) starts a root shell on the serial port, as a getty would: the console test types a
command there and reads its output. The agent is Debian's qemu-guest-agent, which allows guest-exec and the
guest-file-* commands.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import polyvisor
import polyvisor.aio
from polyvisor import CloudInit, GuestCredentials, InUseError, NotFoundError, UnsupportedError, ValidationError
from polyvisor.testing import eventually

from .pvguest import guests as make_guests
from .pvguest import wait_console
from .support import NOCLOUD_SEED, TEST_PREFIX, URI, cleanup, ensure_environment, open_connection

if TYPE_CHECKING:
    from polyvisor import VM

# A shell on the serial port, started in its own session so that the port is its controlling terminal.
SHELL_ON_CONSOLE = """#!/bin/sh
setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1' &
echo console-shell-started
"""

HOSTILE = ["it's", 'say "hi"', "$(touch /tmp/pwned)", "`id`", "a\nb", "tab\there", "ü😀", "-n", "*", "; rm -rf /"]


@pytest.fixture(scope="module")
def guest() -> Iterator[VM]:
    """The tiny x86_64 guest, running, its seed's shell on the serial console."""
    image = ensure_environment("x86_64", (NOCLOUD_SEED,))
    raw = open_connection()
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"
    try:
        with polyvisor.connect(URI) as conn, make_guests(conn, raw, prefix) as made:
            vm = made.create(
                image, "inguest", cloud_init=CloudInit(instance_id=f"{prefix}inguest", user_data=SHELL_ON_CONSOLE)
            )
            vm.start()
            wait_console(vm, lambda text: "user-data exit=" in text, "the seed's user-data to run", timeout=120)
            eventually(lambda: vm.exec(["true"], timeout=10).ok or None, timeout=60, what="the guest agent")
            yield vm
    finally:
        cleanup(raw, prefix)
        raw.close()


def test_type_a_command_at_the_console_shell_and_read_its_output(guest: VM) -> None:
    with guest.console() as console:
        console.write(b"\r")
        console.read_until(b"# ", timeout=30)  # the shell's prompt
        console.write(b"echo $((6 * 7))-answer; uname -s\r")
        console.read_until(b"42-answer", timeout=30)
        assert b"Linux" in console.read_until(b"# ", timeout=30)


def test_a_second_console_is_refused_unless_forced(guest: VM) -> None:
    with guest.console() as first:
        with pytest.raises(InUseError):
            guest.console()
        with guest.console(force=True) as second:
            assert eventually(lambda: first.read(timeout=5) == b"" or None, timeout=20, what="the first to end")
            second.write(b"\r")
            second.read_until(b"# ", timeout=30)


def test_opening_and_closing_consoles_leaks_no_descriptors(guest: VM) -> None:
    def descriptors() -> int:
        return sum(1 for _ in Path("/proc/self/fd").iterdir())

    with guest.console():
        pass  # the first open may set up what stays for the connection's life
    before = descriptors()
    for _ in range(30):
        with guest.console() as console:
            console.write(b"\r")
    assert descriptors() == before


def test_exec_returns_exit_code_stdout_and_stderr(guest: VM) -> None:
    result = guest.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_hostile_arguments_arrive_byte_for_byte(guest: VM) -> None:
    result = guest.exec(["printf", "%s\\0", *HOSTILE])
    assert result.ok, result
    assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in HOSTILE]
    assert guest.exec(["ls", "/tmp/pwned"]).exit_code != 0  # nothing was evaluated


def test_binary_input_and_output_arrive_byte_for_byte(guest: VM) -> None:
    data = bytes(range(256)) * 64
    assert guest.exec(["cat"], input=data).stdout == data


def test_stdin_the_agent_cannot_carry_is_refused_and_the_agent_keeps_answering(guest: VM) -> None:
    from polyvisor_libvirt.guest_agent import STDIN_LIMIT

    data = os.urandom(STDIN_LIMIT)
    assert guest.exec(["cat"], input=data, timeout=60).stdout == data
    with pytest.raises(ValidationError, match="write the data to a file") as refused:
        guest.exec(["cat"], input=data + b"x", timeout=60)
    assert refused.value.field == "input"
    assert guest.exec(["echo", "still here"], timeout=30).stdout == b"still here\n"


def test_nul_and_non_utf8_arguments_are_refused_before_anything_runs(guest: VM) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        guest.exec(["printf", "a\0b"])
    with pytest.raises(ValidationError, match="UTF-8"):
        guest.exec(["printf", b"\xff"])
    with pytest.raises(UnsupportedError):
        guest.exec(["true"], credentials=GuestCredentials("root", "x"))


def test_a_missing_program_is_not_found(guest: VM) -> None:
    with pytest.raises(NotFoundError, match="no-such-program"):
        guest.exec(["no-such-program"])


def test_a_command_past_its_timeout_says_so(guest: VM) -> None:
    with pytest.raises(polyvisor.TimeoutError, match="still running"):
        guest.exec(["sleep", "30"], timeout=2)


def test_files_copy_in_and_out(guest: VM) -> None:
    data = b"\xff\x00binary\r\n" + os.urandom(1024 * 1024)
    guest.write_file("/tmp/pv-copied", data)
    assert guest.read_file("/tmp/pv-copied") == data
    assert guest.exec(["wc", "-c", "/tmp/pv-copied"]).stdout.split()[0] == str(len(data)).encode()
    with pytest.raises(NotFoundError):
        guest.read_file("/tmp/pv-absent")


def test_the_asyncio_face_runs_the_same(guest: VM) -> None:
    async def main() -> tuple[bytes, bytes]:
        async with polyvisor.aio.connect(URI) as conn:
            vm = await conn.vm(guest.uuid)
            result = await vm.exec(["printf", "%s", "async"])
            async with await vm.console() as console:
                await console.write(b"echo aio-$((1+1))\r")
                seen = await console.read_until(b"aio-2", timeout=30)
            return result.stdout, seen

    stdout, seen = asyncio.run(main())
    assert stdout == b"async"
    assert seen.endswith(b"aio-2")
