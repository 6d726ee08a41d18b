"""The ``polyvisor`` root command: global options, error-to-exit-code translation and ``main``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

import polyvisor
from polyvisor.cli import commands, exportcmds, guestcmds, hostcmds, networkcmds, provisioncmds, screencmds, storagecmds
from polyvisor.cli.demo import demo
from polyvisor.cli.exitcodes import EXIT_CODES, exit_code_for
from polyvisor.cli.session import Options, Session
from polyvisor.config import CONFIG_ENV, URI_ENV
from polyvisor.errors import AuthenticationError, PolyvisorError, TimeoutError, UnsupportedError
from polyvisor.plugins import Plugins

__all__ = ["cli", "main"]

_EPILOG = "\n".join(
    [
        "\b",
        "Connection: --connect, else $" + URI_ENV + ", else the config file's default (test:///default is libvirt's",
        "in-process test hypervisor).",
        "Named connections live in $" + CONFIG_ENV + " (default ~/.config/polyvisor/config.toml);",
        "passwords only ever come from environment variables (--password-env VAR, or password_env in the file).",
        "",
        "\b",
        "Exit codes:",
        *(f"  {code}  {meaning}" for code, meaning in EXIT_CODES),
    ]
)


# The library's messages speak Python; these say what to do at the command line.
_HINTS: tuple[tuple[type[PolyvisorError], str], ...] = (
    (UnsupportedError, "'polyvisor host' lists what this backend supports"),
    (TimeoutError, "wait longer with --timeout SECONDS, or power off with 'polyvisor stop VM'"),
    (AuthenticationError, "check the user name, and the password in the --password-env variable or password_env"),
)


def _report_error(error: PolyvisorError, session: Session | None) -> int:
    """Write the error to stderr on one line (a JSON object with ``--json``); return its exit code."""
    code = exit_code_for(error)
    text = " ".join(str(error).split())  # one line, whatever the backend's text held
    hint = next((hint for cls, hint in _HINTS if isinstance(error, cls)), None)
    if hint:
        text += f" (hint: {hint})"
    if session is not None:
        text = session.redact(text)
    if session is not None and session.options.json:
        record = {"error": {"type": type(error).__name__, "message": text, "exit_code": code}}
        click.echo(json.dumps(record, ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {text}", err=True)
    return code


class _Group(click.Group):
    """A group that keeps commands in declaration order and turns PolyvisorErrors into exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PolyvisorError as error:
            session = ctx.obj if isinstance(ctx.obj, Session) else None
            ctx.exit(_report_error(error, session))


@click.group(
    cls=_Group,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option(
    "-c",
    "--connect",
    metavar="URI_OR_NAME",
    envvar=URI_ENV,
    show_envvar=True,
    help="Hypervisor URI (test:///default, qemu:///system, hyperv://admin@hv01/) or a named connection.",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Read the password from environment variable VAR (there is no password option, by design).",
)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON output (stable keys).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Default wait for target states (60; shutdown and ensure 120).",
)
@click.option("-v", "--verbose", count=True, help="Log to stderr: -v info, -vv debug. Credentials are never logged.")
@click.version_option(polyvisor.__version__, "--version", prog_name="polyvisor")
@click.pass_context
def cli(
    ctx: click.Context,
    connect: str | None,
    password_env: str | None,
    json_output: bool,
    timeout: float | None,
    verbose: int,
) -> None:
    """Drive VMs on any hypervisor polyvisor has a backend for, with one set of verbs and states."""
    # An in-process caller (the tests) may hand its own Plugins as the context object.
    plugins = ctx.obj if isinstance(ctx.obj, Plugins) else None
    session = Session(Options(connect, password_env, json_output, timeout, verbose), plugins)
    ctx.obj = session
    ctx.call_on_close(session.close)
    session.start_logging()


def _late_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    session = ctx.find_object(Session)
    if value and session is not None:
        session.want_json()


def _accept_json_after(command: click.Command) -> None:
    """Let ``--json`` follow the subcommand too (``polyvisor list --json``), on every command and subcommand."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_json_after(sub)
        return
    if any("--json" in param.opts for param in command.params):
        return
    command.params.append(
        click.Option(
            ["--json"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_late_json,
            help="Machine-readable JSON output (the same as the global --json).",
        )
    )


for _command in (
    *commands.COMMANDS,
    *provisioncmds.COMMANDS,
    *guestcmds.COMMANDS,
    *hostcmds.COMMANDS,
    *storagecmds.COMMANDS,
    *networkcmds.COMMANDS,
    *exportcmds.COMMANDS,
    *screencmds.COMMANDS,
    demo,
):
    _accept_json_after(_command)
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None, *, plugins: Plugins | None = None) -> None:
    """Run the command line (the ``polyvisor`` console script); exits the process with the exit code."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="polyvisor", obj=plugins)
