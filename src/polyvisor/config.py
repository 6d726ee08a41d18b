"""Named connections from a TOML file.

``$POLYVISOR_CONFIG`` or ``$XDG_CONFIG_HOME/polyvisor/config.toml`` (``~/.config/polyvisor/config.toml``)::

    default = "lab"

    [connections.lab]
    uri = "qemu:///system"

    [connections.hv01]
    uri = "hyperv://admin@hv01.example.com/"
    password_env = "HV01_PASSWORD"      # the password is read from this environment variable
    options = { ca_path = "/etc/ssl/hv01-ca.pem" }

    [connections.hv02]
    uri = "hyperv://admin@hv02.example.com/"
    password_keyring = "polyvisor/hv02"  # service/user in the system keyring (needs the keyring package)
    timeout = 10                        # seconds a fleet call waits for this host (default: the fleet's)
    labels = { site = "berlin" }        # host labels, for fleet placement

    [groups]
    lab = ["lab", "hv01"]               # connection names, or other groups; "all" is every connection
    everything = ["lab", "hv02"]

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
from polyvisor.model import validate_labels

__all__ = [
    "ALL_GROUP",
    "CONFIG_ENV",
    "NO_HYPERVISOR_HINT",
    "Config",
    "NamedConnection",
    "config_path",
    "load_config",
    "read_config",
    "resolve",
]

CONFIG_ENV = "POLYVISOR_CONFIG"
URI_ENV = "POLYVISOR_URI"
NO_HYPERVISOR_HINT = (
    "no hypervisor named: pass a URI such as polyvisor.connect('qemu:///system') or "
    "connect('hyperv://admin@hv01/'), set $POLYVISOR_URI, or set default = 'NAME' in the config file "
    f"(${CONFIG_ENV}); connect('test:///default') opens libvirt's in-process test hypervisor"
)

ALL_GROUP = "all"
"""The group every config names implicitly: all its connections."""

_SECRET_KEYS = {"password", "passwd", "secret", "token"}
_KNOWN_KEYS = {"uri", "username", "username_env", "password_env", "password_keyring", "options", "timeout", "labels"}


@dataclass(frozen=True)
class NamedConnection:
    """One ``[connections.NAME]`` table."""

    name: str
    uri: str
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    password_keyring: str | None = None
    """``service/user`` of the password in the system keyring (read with the optional ``keyring`` package)."""
    timeout: float | None = None
    """Seconds a fleet call waits for this host; None: the fleet's own timeout."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the host itself, which fleet placement can ask for."""

    def __post_init__(self) -> None:
        if self.password_env and self.password_keyring:
            raise ValidationError(
                f"connection {self.name!r} names both password_env and password_keyring; keep one",
                field="password_keyring",
            )
        if self.password_keyring is not None:
            service, _, user = self.password_keyring.rpartition("/")
            if not service or not user:
                raise ValidationError(
                    f"connection {self.name!r}: password_keyring is 'service/user', got {self.password_keyring!r}",
                    field="password_keyring",
                )
        timeout = self.timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ValidationError(
                f"connection {self.name!r}: timeout is a number of seconds > 0, got {timeout!r}", field="timeout"
            )
        object.__setattr__(self, "labels", validate_labels(self.labels, f"connections.{self.name}.labels"))

    def credentials(self) -> dict[str, Any]:
        """Return keyword arguments for ``connect()``, reading secrets from the environment or the keyring."""
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
        if self.password_keyring:
            kwargs["password"] = self._keyring_password(self.password_keyring)
        return kwargs

    def _keyring_password(self, reference: str) -> str:
        service, _, user = reference.rpartition("/")
        try:
            import keyring  # optional: only configs that name a keyring entry need it
        except ImportError:
            raise ValidationError(
                f"connection {self.name!r} reads its password from the keyring ({reference}), but the keyring "
                "package is not installed; install it (pip install keyring) or use password_env",
                field="password_keyring",
            ) from None
        try:
            password = keyring.get_password(service, user)
        except Exception as error:  # keyring backends raise their own errors; the message names none of the secret
            raise ValidationError(
                f"connection {self.name!r}: the keyring could not be read for {reference} ({type(error).__name__}: "
                f"{error})",
                field="password_keyring",
            ) from None
        if not isinstance(password, str) or not password:
            raise ValidationError(
                f"connection {self.name!r}: the keyring holds no password for service {service!r}, user {user!r}; "
                f"store one with: keyring set {service} {user}",
                field="password_keyring",
            )
        return password


@dataclass(frozen=True)
class Config:
    """The whole config file: the default connection's name, named connections and groups of them."""

    default: str | None = None
    connections: Mapping[str, NamedConnection] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Each group's members as written (connection or group names); :meth:`group` resolves them."""

    def is_group(self, name: str) -> bool:
        """Return whether ``name`` is a group (``all`` always is)."""
        return name == ALL_GROUP or name in self.groups

    def group(self, name: str) -> list[str]:
        """Return the connection names of a group, nested groups expanded, each once, in order."""
        if name == ALL_GROUP:
            return list(self.connections)
        if name not in self.groups:
            known = ", ".join(sorted({ALL_GROUP, *self.groups}))
            raise NotFoundError(f"no group named {name!r} in {config_path()} (groups: {known})")
        out: dict[str, None] = {}
        self._expand(name, [], out)
        return list(out)

    def _expand(self, name: str, path: list[str], out: dict[str, None]) -> None:
        for member in self.groups[name]:
            if member in self.connections:
                out.setdefault(member, None)
            elif member == ALL_GROUP:
                out.update(dict.fromkeys(self.connections))
            elif member in self.groups:
                if member in (*path, name):
                    cycle = " -> ".join([*path, name, member])
                    raise ValidationError(f"groups include each other in a cycle: {cycle}", field="groups")
                self._expand(member, [*path, name], out)
            else:
                raise ValidationError(
                    f"group {name!r} names {member!r}, which is neither a connection nor a group "
                    f"(connections: {', '.join(sorted(self.connections)) or 'none'})",
                    field="groups",
                )


def config_path() -> Path:
    """Return where the config file is looked for."""
    if CONFIG_ENV in os.environ:
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "polyvisor" / "config.toml"


def load_config(path: Path | None = None) -> tuple[str | None, dict[str, NamedConnection]]:
    """Return (default name, named connections) from the config file; a missing file is empty."""
    config = read_config(path)
    return config.default, dict(config.connections)


def read_config(path: Path | None = None) -> Config:
    """Return the whole config file, groups checked (members exist, no cycles); a missing file is empty."""
    path = path or config_path()
    if not path.exists():
        return Config()
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
        if name == ALL_GROUP:
            raise ValidationError(
                f"{path}: {ALL_GROUP!r} is the group of every connection; give connections.{name} another name",
                field="config",
            )
        secrets = sorted(_SECRET_KEYS & {key.lower() for key in table} | _SECRET_KEYS & set(table.get("options", {})))
        if secrets:
            raise ValidationError(
                f"{path}: connections.{name} stores {', '.join(secrets)} in plain text; remove it and name an "
                "environment variable with password_env (or a keyring entry with password_keyring) instead",
                field="config",
            )
        unknown = sorted(set(table) - _KNOWN_KEYS)
        if unknown:
            raise ValidationError(
                f"{path}: connections.{name} has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN_KEYS))}",
                field="config",
            )
        try:
            out[name] = NamedConnection(name=name, **table)
        except ValidationError as error:
            raise ValidationError(f"{path}: {error.message}", field=error.field) from None
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ValidationError(f"{path}: default must be a connection name", field="config")
    config = Config(default, out, _groups(path, data.get("groups", {}), out))
    for group in config.groups:
        try:
            config.group(group)  # unknown members and cycles are errors of the file, found when it is read
        except ValidationError as error:
            raise ValidationError(f"{path}: {error.message}", field=error.field) from None
    return config


def _groups(path: Path, data: object, connections: Mapping[str, NamedConnection]) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: [groups] must be a table of lists of names", field="groups")
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in data.items():
        if name == ALL_GROUP:
            raise ValidationError(
                f"{path}: groups.{ALL_GROUP} is implicit (every connection); remove it", field="groups"
            )
        if name in connections:
            raise ValidationError(
                f"{path}: groups.{name} has the name of a connection, so -c {name} would be ambiguous; rename one",
                field="groups",
            )
        if not isinstance(members, list) or not all(isinstance(member, str) for member in members):
            raise ValidationError(f"{path}: groups.{name} must be a list of names", field="groups")
        groups[name] = tuple(members)
    return groups


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
