"""Named connections from a TOML file.

``$POLYVISOR_CONFIG`` or ``$XDG_CONFIG_HOME/polyvisor/config.toml`` (``~/.config/polyvisor/config.toml``)::

    default = "lab"

    [connections.lab]
    uri = "qemu:///system"

    [connections.hv01]
    uri = "hyperv://admin@hv01.example.com/"
    password_env = "HV01_PASSWORD"      # the password is read from this environment variable
    options = { ca_path = "/etc/ssl/hv01-ca.pem" }

Secrets never live in the file: a ``password`` key is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyvisor.errors import NotFoundError, ValidationError

__all__ = ["CONFIG_ENV", "NO_HYPERVISOR_HINT", "NamedConnection", "config_path", "load_config", "resolve"]

CONFIG_ENV = "POLYVISOR_CONFIG"
URI_ENV = "POLYVISOR_URI"
NO_HYPERVISOR_HINT = (
    "no hypervisor named: pass a URI such as polyvisor.connect('qemu:///system') or "
    "connect('hyperv://admin@hv01/'), set $POLYVISOR_URI, or set default = 'NAME' in the config file "
    f"(${CONFIG_ENV}); connect('test:///default') opens libvirt's in-process test hypervisor"
)

_SECRET_KEYS = {"password", "passwd", "secret", "token"}


@dataclass(frozen=True)
class NamedConnection:
    """One ``[connections.NAME]`` table."""

    name: str
    uri: str
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def credentials(self) -> dict[str, Any]:
        """Return keyword arguments for ``connect()``, reading secrets from the environment."""
        kwargs: dict[str, Any] = dict(self.options)
        username = self.username
        if self.username_env:
            username = os.environ.get(self.username_env, username)
        if username:
            kwargs["username"] = username
        if self.password_env:
            if self.password_env not in os.environ:
                raise ValidationError(
                    f"connection {self.name!r} reads its password from ${self.password_env}, which is not set; "
                    "export it first",
                    field="password_env",
                )
            kwargs["password"] = os.environ[self.password_env]
        return kwargs


def config_path() -> Path:
    """Return where the config file is looked for."""
    if CONFIG_ENV in os.environ:
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "polyvisor" / "config.toml"


def load_config(path: Path | None = None) -> tuple[str | None, dict[str, NamedConnection]]:
    """Return (default name, named connections) from the config file; a missing file is empty."""
    path = path or config_path()
    if not path.exists():
        return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValidationError(f"cannot read {path}: {error}", field="config") from None
    tables = data.get("connections", {})
    if not isinstance(tables, dict):
        raise ValidationError(f"{path}: [connections] must be a table", field="config")
    out: dict[str, NamedConnection] = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("uri"), str):
            raise ValidationError(f"{path}: connections.{name} needs a uri string", field="config")
        secrets = sorted(_SECRET_KEYS & {key.lower() for key in table} | _SECRET_KEYS & set(table.get("options", {})))
        if secrets:
            raise ValidationError(
                f"{path}: connections.{name} stores {', '.join(secrets)} in plain text; remove it and name an "
                "environment variable with password_env instead",
                field="config",
            )
        known = {"uri", "username", "username_env", "password_env", "options"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValidationError(
                f"{path}: connections.{name} has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}",
                field="config",
            )
        out[name] = NamedConnection(name=name, **table)
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ValidationError(f"{path}: default must be a connection name", field="config")
    return default, out


def resolve(name_or_uri: str | None) -> tuple[str, dict[str, Any]]:
    """Return (uri, credential kwargs) for a URI, a connection name, or None (the default)."""
    if name_or_uri is None:
        name_or_uri = os.environ.get(URI_ENV)
    if name_or_uri is None:
        default, _ = load_config()
        if default is None:
            raise ValidationError(NO_HYPERVISOR_HINT, field="uri")
        name_or_uri = default
    if ":" in name_or_uri:
        return name_or_uri, {}
    default, named = load_config()
    if name_or_uri not in named:
        known = ", ".join(sorted(named)) or "none"
        raise NotFoundError(
            f"{name_or_uri!r} is neither a URI nor a connection named in {config_path()} (named: {known})"
        )
    entry = named[name_or_uri]
    return entry.uri, entry.credentials()
