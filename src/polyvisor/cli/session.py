"""One CLI invocation's state: global options, the plugins, the lazily opened connection and the secrets to hide."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click

import polyvisor
from polyvisor import config
from polyvisor.cli.progress import Spinner
from polyvisor.cli.render import dump_json
from polyvisor.connection import Connection
from polyvisor.errors import PolyvisorError, ValidationError
from polyvisor.fleet import Fleet
from polyvisor.plugins import Plugins, default_plugins
from polyvisor.uri import URI
from polyvisor.vm import VM

__all__ = ["Options", "Session"]

log = logging.getLogger("polyvisor.cli")

_MASK = "***"


@dataclass(frozen=True)
class Options:
    """The global command-line options."""

    connect: str | None = None
    password_env: str | None = None
    json: bool = False
    timeout: float | None = None
    verbose: int = 0


class _Redact(logging.Filter):
    """Masks known secrets in log records, whatever logged them."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._session.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class Session:
    """What every command shares; stored as the click context's ``obj``."""

    def __init__(self, options: Options, plugins: Plugins | None = None) -> None:
        self.options = options
        self._plugins = plugins
        self._connection: Connection | None = None
        self._fleet: Fleet | None = None
        self._secrets: set[str] = set()
        self._log_handler: logging.Handler | None = None
        self._saved_level: int | None = None

    # -- lifetime ---------------------------------------------------------------------------------------------
    def start_logging(self) -> None:
        """Send log records to stderr when ``-v`` was given (INFO; ``-vv`` DEBUG)."""
        if not self.options.verbose:
            return
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_Redact(self))
        root = logging.getLogger()
        self._saved_level = root.level
        root.setLevel(logging.DEBUG if self.options.verbose > 1 else logging.INFO)
        root.addHandler(handler)
        self._log_handler = handler

    def connect_to(self, name: str) -> None:
        """Use ``name`` as ``--connect`` (a command's own ``-c``), before anything is opened."""
        self.options = replace(self.options, connect=name)

    def want_json(self) -> None:
        """Switch to JSON output (``--json`` given after the subcommand)."""
        self.options = replace(self.options, json=True)

    def close(self) -> None:
        """Close the connection (or the fleet) and detach the log handler."""
        if self._fleet is not None:
            fleet, self._fleet = self._fleet, None
            fleet.close()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except PolyvisorError as error:  # the command's own result stands; a failed goodbye is only noted
                log.warning("closing the connection failed: %s", self.redact(str(error)))
        if self._log_handler is not None:
            root = logging.getLogger()
            root.removeHandler(self._log_handler)
            if self._saved_level is not None:
                root.setLevel(self._saved_level)
            self._log_handler = None

    # -- plugins and connection -------------------------------------------------------------------------------
    @property
    def plugins(self) -> Plugins:
        """The plugins given by the caller (tests), else the installed ones."""
        if self._plugins is None:
            self._plugins = default_plugins()
        return self._plugins

    @property
    def connection(self) -> Connection:
        """The connection, opened on first use."""
        return self.open()

    def open(self, default: str | None = None) -> Connection:
        """Return the connection, opening it on first use; ``default`` is the URI used when --connect is absent."""
        if self._connection is None:
            self._connection = self._open(default)
        return self._connection

    def _open(self, default: str | None) -> Connection:
        text, credentials = config.resolve(self.options.connect or default)
        uri = URI.parse(text)
        if uri.password:
            self._secrets.add(uri.password)
        if self.options.password_env:
            variable = self.options.password_env
            if variable not in os.environ:
                raise ValidationError(
                    f"${variable} is not set; export the password in it, or drop --password-env",
                    field="--password-env",
                )
            credentials["password"] = os.environ[variable]
        password = credentials.get("password")
        if isinstance(password, str) and password:
            self._secrets.add(password)
        log.info("connecting to %s", uri.render())
        return polyvisor.connect(uri, plugins=self.plugins, **credentials)

    @property
    def group(self) -> str | None:
        """The config group ``--connect`` names (``all`` included), or None for one connection or URI."""
        name = self.options.connect
        if not name or ":" in name:
            return None
        return name if config.read_config().is_group(name) else None

    @property
    def fleet(self) -> Fleet:
        """The fleet of the ``--connect`` group, made on first use; its connections open as hosts are asked."""
        if self._fleet is None:
            group = self.group
            if group is None:
                raise ValidationError("--connect names no group", field="--connect")
            if self.options.password_env:
                raise ValidationError(
                    "--password-env applies to one connection; give each connection of a group its own "
                    "password_env or password_keyring in the config file",
                    field="--password-env",
                )
            fleet = Fleet.from_config(group, plugins=self.plugins)
            for host in fleet.hosts:
                self._remember_secrets(fleet, host)
            self._fleet = fleet
        return self._fleet

    def _remember_secrets(self, fleet: Fleet, host: str) -> None:
        target = config.read_config().connections[host]
        uri = URI.parse(target.uri)
        if uri.password:
            self._secrets.add(uri.password)
        try:
            password = target.credentials().get("password")
        except PolyvisorError:
            return  # the host's own call reports it
        if isinstance(password, str) and password:
            self._secrets.add(password)

    def vm(self, ref: str) -> VM:
        """Return the VM named (or with the UUID) ``ref``."""
        return self.connection.vm(ref)

    def timeout(self, local: float | None, default: float) -> float:
        """Return the command's ``--timeout``, else the global one, else ``default``."""
        if local is not None:
            return local
        if self.options.timeout is not None:
            return self.options.timeout
        return default

    # -- output -----------------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret masked."""
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _MASK)
        return text

    def emit(self, record: Any, human: Callable[[], str]) -> None:
        """Print ``record`` as JSON with ``--json``, else the text ``human()`` builds."""
        text = dump_json(record) if self.options.json else human()
        if text:
            click.echo(self.redact(text))

    def spinner(self, message: str) -> Spinner:
        """Return a spinner on stderr (silent unless stderr is a terminal)."""
        return Spinner(sys.stderr, message)
