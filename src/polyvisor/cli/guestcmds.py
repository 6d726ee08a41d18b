"""Commands inside a VM's guest: ``polyvisor console``, ``exec``, ``copy-in`` and ``copy-out``.

``console`` is interactive on a terminal, as ``virsh console`` is: the terminal goes into raw mode (every key,
Ctrl-C included, reaches the guest) and is restored on the way out, which the escape key (Ctrl-], or ``--escape``)
takes. Without a terminal (or with ``--no-tty``), for scripts: stdin is sent, then the console's output is copied to
stdout until ``--until TEXT`` arrives, or nothing arrives for ``--idle`` seconds.

``exec`` runs ``argv`` after ``--`` as a list (never through a shell), writes the command's stdout and stderr to
ours and exits with its exit code (128 + N for a signal N), as ``ssh`` does; ``--json`` prints the result instead,
output as text or base64.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections.abc import Iterator
from typing import IO

import click

from polyvisor.cli.session import Session
from polyvisor.console import Console
from polyvisor.errors import TimeoutError, ValidationError
from polyvisor.guestexec import GuestCredentials
from polyvisor.inguest import EXEC_TIMEOUT
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

__all__ = ["COMMANDS", "escape_byte"]

pass_session = click.make_pass_decorator(Session)

_ESCAPE_DEFAULT = "^]"


def escape_byte(text: str) -> int:
    """The byte of an escape key written ``^]`` (Ctrl-]), ``^A`` or as one character."""
    if len(text) == 2 and text[0] == "^" and 0x40 <= ord(text[1].upper()) <= 0x5F:
        return ord(text[1].upper()) - 0x40
    if len(text) == 1 and ord(text) < 0x80:
        return ord(text)
    raise ValidationError(f"{text!r} is not a key: write it as ^] (Ctrl-]), ^A, or one ASCII character", field="escape")


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    """Put the terminal in raw mode for the block; restore it however the block ends."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump_out(console: Console, out: IO[bytes], done: threading.Event) -> None:
    """Copy the console to ``out`` until it ends or ``done`` is set."""
    while not done.is_set():
        try:
            data = console.read(timeout=0.2)
        except TimeoutError:
            continue
        except Exception:  # the console was closed under the read: we are leaving
            break
        if not data:
            break
        out.write(data)
        out.flush()
    done.set()


def _interactive(console: Console, escape: int, name: str) -> None:
    fd = sys.stdin.fileno()
    click.echo(f"Connected to {name}; escape character is {_key_name(escape)}", err=True)
    done = threading.Event()
    out = threading.Thread(target=_pump_out, args=(console, sys.stdout.buffer, done), daemon=True)
    with _raw_terminal(fd):
        out.start()
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 1024)
            if not data:
                break
            if escape in data:
                console.write(data[: data.index(escape)])
                break
            console.write(data)
        done.set()
    out.join(timeout=1)
    click.echo("", err=True)


def _scripted(console: Console, session: Session, until: str | None, idle: float, timeout: float) -> None:
    data = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    if data:
        console.write(data)
    seen = bytearray()
    ended = False
    wanted = until.encode("utf-8") if until else None
    with contextlib.suppress(TimeoutError):
        if wanted is not None:
            seen += console.read_until(wanted, timeout=timeout)
        else:
            while chunk := console.read(timeout=idle):
                seen += chunk
                if not session.options.json:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
            ended = True
    if session.options.json:
        session.emit({"vm": console.vm, "output": seen.decode("utf-8", "replace"), "ended": ended}, lambda: "")
    elif wanted is not None:
        sys.stdout.buffer.write(bytes(seen))
        sys.stdout.buffer.flush()
    if wanted is not None and not seen.endswith(wanted):
        raise TimeoutError(f"{until!r} did not arrive on the console within {timeout:g}s", vm=console.vm)


def _key_name(byte: int) -> str:
    return f"^{chr(byte + 0x40)}" if byte < 0x20 else repr(chr(byte))


@click.command("console")
@click.argument("vm")
@click.option("--force", is_flag=True, help="Take the console over from another client (its session ends).")
@click.option("--escape", default=_ESCAPE_DEFAULT, show_default=True, help="The key that ends an interactive session.")
@click.option("--no-tty", is_flag=True, help="Script mode even on a terminal: send stdin, print the output.")
@click.option("--until", metavar="TEXT", help="Script mode: stop once TEXT arrived (exit 5 if it does not).")
@click.option(
    "--idle",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Script mode: stop after this many seconds without output.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long opening the console, and waiting for --until, may take (default: the global --timeout, else "
    f"{DEFAULT_TIMEOUT:g}).",
)
@pass_session
def console(
    session: Session,
    vm: str,
    force: bool,
    escape: str,
    no_tty: bool,
    until: str | None,
    idle: float,
    timeout: float | None,
) -> None:
    """Attach to VM's serial console: interactive on a terminal (leave with the escape key), else a script's."""
    key = escape_byte(escape)
    seconds = session.timeout(timeout, DEFAULT_TIMEOUT)
    handle = session.vm(vm)
    with handle.console(force=force, timeout=seconds) as opened:
        if sys.stdin.isatty() and sys.stdout.isatty() and not no_tty and not session.options.json:
            _interactive(opened, key, handle.seen_name)
        else:
            _scripted(opened, session, until, idle, seconds)


def _credentials(user: str | None, password_env: str | None) -> GuestCredentials | None:
    if user is None and password_env is None:
        return None
    if user is None or password_env is None:
        raise ValidationError("give both --user and --guest-password-env, or neither", field="credentials")
    password = os.environ.get(password_env)
    if password is None:
        raise ValidationError(f"environment variable {password_env} is not set", field="guest-password-env")
    return GuestCredentials(user, password)


_user_option = click.option("--user", help="The guest account to log in as, where the channel logs in (Hyper-V).")
_password_option = click.option(
    "--guest-password-env", metavar="VAR", help="Read the guest account's password from environment variable VAR."
)


@click.command("exec")
@click.argument("vm")
@click.argument("argv", nargs=-1, required=True)
@click.option("--stdin", "use_stdin", is_flag=True, help="Send our stdin to the command.")
@click.option("--input-file", type=click.File("rb"), help="Send this file to the command's stdin.")
@_user_option
@_password_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=f"How long the command may run (default: the global --timeout, else {EXEC_TIMEOUT:g}).",
)
@pass_session
def exec_command(
    session: Session,
    vm: str,
    argv: tuple[str, ...],
    use_stdin: bool,
    input_file: IO[bytes] | None,
    user: str | None,
    guest_password_env: str | None,
    timeout: float | None,
) -> None:
    """Run ARGV (after --: polyvisor exec VM -- ls -l /) in VM's guest; exit with its exit code."""
    credentials = _credentials(user, guest_password_env)
    if use_stdin and input_file is not None:
        raise ValidationError("give --stdin or --input-file, not both", field="stdin")
    data = input_file.read() if input_file is not None else sys.stdin.buffer.read() if use_stdin else None
    argv_bytes = [os.fsencode(arg) for arg in argv]  # as the shell gave them, undecodable bytes included
    handle = session.vm(vm)
    result = handle.exec(
        argv_bytes, input=data, credentials=credentials, timeout=session.timeout(timeout, EXEC_TIMEOUT)
    )
    code = result.exit_code if result.exit_code is not None else 128 + (result.signal or 0)
    if session.options.json:
        session.emit({"vm": handle.seen_name, **result.to_dict()}, lambda: "")
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.buffer.flush()
    click.get_current_context().exit(code)


@click.command("copy-in")
@click.argument("vm")
@click.argument("source", type=click.File("rb"))
@click.argument("path")
@_user_option
@_password_option
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS", help="How long it may take.")
@pass_session
def copy_in(
    session: Session,
    vm: str,
    source: IO[bytes],
    path: str,
    user: str | None,
    guest_password_env: str | None,
    timeout: float | None,
) -> None:
    """Copy the local file SOURCE (- for stdin) to PATH in VM's guest."""
    data = source.read()
    handle = session.vm(vm)
    handle.write_file(
        path,
        data,
        credentials=_credentials(user, guest_password_env),
        timeout=session.timeout(timeout, DEFAULT_TIMEOUT),
    )
    record = {"vm": handle.seen_name, "path": path, "bytes": len(data)}
    session.emit(record, lambda: f"{handle.seen_name}: wrote {len(data)} bytes to {path}")


@click.command("copy-out")
@click.argument("vm")
@click.argument("path")
@click.argument("destination", type=click.File("wb"))
@_user_option
@_password_option
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS", help="How long it may take.")
@pass_session
def copy_out(
    session: Session,
    vm: str,
    path: str,
    destination: IO[bytes],
    user: str | None,
    guest_password_env: str | None,
    timeout: float | None,
) -> None:
    """Copy PATH in VM's guest to the local file DESTINATION (- for stdout)."""
    handle = session.vm(vm)
    data = handle.read_file(
        path, credentials=_credentials(user, guest_password_env), timeout=session.timeout(timeout, DEFAULT_TIMEOUT)
    )
    destination.write(data)
    destination.flush()
    if destination is not sys.stdout.buffer and getattr(destination, "name", "-") != "-":
        record = {"vm": handle.seen_name, "path": path, "bytes": len(data)}
        session.emit(record, lambda: f"{handle.seen_name}: read {len(data)} bytes from {path}")


COMMANDS = (console, exec_command, copy_in, copy_out)
