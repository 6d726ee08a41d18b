"""Connection options: parsed from the ``hyperv://`` URI's query and from ``connect()`` keywords (keywords win).

``hyperv://[user@]host[:port]/?transport=psrp|winrm&auth=negotiate|ntlm|kerberos|credssp|basic&scheme=https|http
&verify=true|false&ca=PATH&encryption=auto|always|never&allow_http_basic=1&nat_prefix=CIDR&spn_host=NAME``

Defaults are the safe ones: PSRP, HTTPS on 5986, certificate verification on. Plain HTTP (5985) with NTLM,
Negotiate or Kerberos uses message encryption; Basic over plain HTTP sends the password in clear text and is refused
unless ``allow_http_basic`` is set. CredSSP hands the password itself to the host (that is what it is for: a second
hop), so polyvisor uses it over HTTPS only.

Kerberos takes a password (polyvisor gets its own ticket, in memory) or, without one, the ticket cache that
``kinit`` filled (``KRB5CCNAME``); the service principal is ``HTTP/<spn_host>``, ``spn_host`` defaulting to the
URI's host.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyvisor.backend import Credentials, Secret
from polyvisor.backend_helpers import refuse_unknown_options
from polyvisor.errors import ValidationError
from polyvisor.uri import URI

__all__ = ["ConnectionOptions", "parse_options"]

TRANSPORTS = ("psrp", "winrm")
AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
SCHEMES = ("https", "http")
ENCRYPTIONS = ("auto", "always", "never")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# Keyword spellings that the URI query spells differently.
_ALIASES = {"ca": "ca_path"}


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Everything needed to open a WinRM/PSRP connection; the password stays wrapped in a Secret."""

    host: str
    port: int
    username: str | None
    password: Secret | None
    transport: str = "psrp"
    auth: str = "negotiate"
    scheme: str = "https"
    verify: bool = True
    ca_path: str | None = None
    encryption: str = "auto"
    path: str = "wsman"
    operation_timeout: int = 20
    """Seconds the server may hold one WS-Management request (wsman:OperationTimeout)."""
    read_timeout: int = 30
    """Seconds the client waits for one HTTP response; must exceed operation_timeout."""
    connect_timeout: int = 30
    command_timeout: float = 600.0
    """Seconds one PowerShell operation may run before it is stopped and TimeoutError raised."""
    sessions: int = 8
    """How many runspace pools (or shells) the connection opens at most, for threads calling at once."""
    spn_host: str | None = None
    """The host name of the service principal (``HTTP/<spn_host>``) for Kerberos; None: the URI's host."""
    idle_timeout: int | None = None
    """Seconds the host may keep the session (shell or runspace pool) idle before deleting it (rsp:IdleTimeOut);
    None leaves it to the host's configuration (Windows: 7200, capped by the plugin's MaxIdleTimeoutms)."""
    nat_prefix: str | None = None
    """The IPv4 prefix of the NAT network the backend makes for NAT NICs when the host has none (None: 172.31.213.0/24);
    naming one also insists that a NAT network the host already has is over it."""

    @property
    def ssl(self) -> bool:
        """Return whether HTTPS is used."""
        return self.scheme == "https"

    @property
    def endpoint(self) -> str:
        """The WS-Management URL (no credentials in it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.path}"

    def __repr__(self) -> str:
        return (
            f"ConnectionOptions({self.endpoint!r}, transport={self.transport!r}, auth={self.auth!r}, "
            f"username={self.username!r}, password={'***' if self.password else None}, verify={self.verify!r})"
        )

    @property
    def service_principal(self) -> str:
        """The Kerberos service principal name the transports ask for: ``HTTP/<host>``."""
        return f"HTTP/{self.spn_host or self.host}"


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], str]:
    def convert(name: str, value: object) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValidationError(f"{value!r} is not one of: {', '.join(choices)}", field=name)
        return text

    return convert


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError(f"{value!r} is not a boolean (use true or false)", field=name)


def _seconds(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]  # anything else is refused just below
    except (TypeError, ValueError):
        raise ValidationError(f"{value!r} is not a number of seconds", field=name) from None
    if isinstance(value, bool) or not number > 0:
        raise ValidationError(f"must be a positive number of seconds, got {value!r}", field=name)
    return number


def _count(name: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if not 1 <= number <= 25:
        # 25: the default MaxShellsPerUser of the PowerShell endpoint (Windows' WinRM plugin configuration).
        raise ValidationError(f"must be a whole number from 1 to 25, got {value!r}", field=name)
    return number


def _path(name: str, value: object) -> str:
    text = str(value)
    if not text or not Path(text).is_file():
        raise ValidationError(f"{text!r} is not a readable CA certificate file (PEM)", field=name)
    return text


def _prefix(name: str, value: object) -> str:
    try:
        network = ipaddress.IPv4Network(str(value).strip())
    except ValueError:
        raise ValidationError(
            f"{value!r} is not an IPv4 prefix with its host bits zero, such as 172.31.213.0/24", field=name
        ) from None
    if not network.is_private or not 8 <= network.prefixlen <= 30:
        raise ValidationError(
            f"{network} is not a private IPv4 prefix of /8 to /30 (the NAT network's guests need addresses in it)",
            field=name,
        )
    return str(network)


def _hostname(name: str, value: object) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?", text):
        raise ValidationError(f"{value!r} is not a host name (the one in the HTTP/ service principal)", field=name)
    return text


def _text(name: str, value: object) -> str:
    text = str(value).strip("/")
    if not text or any(ch in text for ch in "?#\r\n"):
        raise ValidationError(f"{value!r} is not a URL path", field=name)
    return text


_CONVERTERS: dict[str, Callable[[str, object], Any]] = {
    "transport": _choice(TRANSPORTS),
    "auth": _choice(AUTHS),
    "scheme": _choice(SCHEMES),
    "verify": _bool,
    "ca_path": _path,
    "encryption": _choice(ENCRYPTIONS),
    "allow_http_basic": _bool,
    "allow_unencrypted": _bool,
    "path": _text,
    "operation_timeout": _seconds,
    "read_timeout": _seconds,
    "connect_timeout": _seconds,
    "command_timeout": _seconds,
    "sessions": _count,
    "idle_timeout": _seconds,
    "nat_prefix": _prefix,
    "spn_host": _hostname,
}


def parse_options(uri: URI, credentials: Credentials) -> ConnectionOptions:
    """Merge the URI and ``connect()`` keywords into options; raise ValidationError naming what is wrong."""
    if not uri.host:
        raise ValidationError("a hyperv:// URI needs a host, e.g. hyperv://admin@hv01.example.com/", field="uri")
    raw: dict[str, object] = {}
    if uri.transport:
        raw["transport"] = uri.transport
    for key, value in uri.query:
        raw[_ALIASES.get(key, key)] = value
    for key, value in credentials.options.items():
        raw[_ALIASES.get(key, key)] = value
    refuse_unknown_options(raw, _CONVERTERS, backend="Hyper-V")
    values = {key: _CONVERTERS[key](key, value) for key, value in raw.items()}

    scheme = values.get("scheme", "https")
    auth = values.get("auth", "negotiate")
    verify = values.get("verify", True)
    ca_path = values.get("ca_path")
    encryption = values.get("encryption", "auto")
    if ca_path is not None and not verify:
        raise ValidationError("ca names a CA to verify against but verify is false; drop one of them", field="ca_path")
    if scheme == "http" and auth == "credssp":
        raise ValidationError(
            "CredSSP delegates your password to the host; polyvisor sends it over HTTPS only: use scheme=https "
            "(the default, port 5986), or auth=kerberos if the host needs no second hop",
            field="auth",
        )
    if scheme == "http":
        if auth == "basic":
            if not values.get("allow_http_basic", False):
                raise ValidationError(
                    "Basic authentication over plain HTTP sends the password in clear text; use scheme=https "
                    "(the default), another auth, or pass allow_http_basic=1 if you accept that",
                    field="auth",
                )
            # Basic has no session key, so there is nothing to encrypt messages with.
            encryption = "never"
        elif encryption == "never" and not values.get("allow_unencrypted", False):
            raise ValidationError(
                "encryption=never over plain HTTP sends every message in clear text; use scheme=https or "
                "encryption=auto, or pass allow_unencrypted=1 if you accept that",
                field="encryption",
            )
    if scheme == "https" and encryption == "always" and auth == "basic":
        raise ValidationError("Basic authentication cannot encrypt messages; use encryption=auto", field="encryption")
    if auth == "kerberos" and credentials.password is not None and not credentials.username:
        raise ValidationError(
            "a Kerberos password needs its user: hyperv://USER@host/ (or USER@REALM); without a password the "
            "ticket cache (kinit) is used",
            field="username",
        )
    if auth != "kerberos" and (not credentials.username or credentials.password is None):
        raise ValidationError(
            f"{auth} authentication needs a username and a password: hyperv://USER@host/ and password=...",
            field="username",
        )
    if auth in ("kerberos", "credssp"):
        from polyvisor_hyperv.kerberos import require

        require(auth)
    # The protocols take whole seconds; rounding up keeps a fraction from becoming 0 (no wait at all).
    operation_timeout = math.ceil(values.get("operation_timeout", 20))
    read_timeout = math.ceil(values.get("read_timeout", operation_timeout + 10))
    if read_timeout <= operation_timeout:
        raise ValidationError(
            f"must exceed operation_timeout ({operation_timeout}s), or replies are cut off", field="read_timeout"
        )
    return ConnectionOptions(
        host=uri.host,
        port=uri.port or (5986 if scheme == "https" else 5985),
        username=credentials.username,
        password=credentials.password,
        transport=values.get("transport", "psrp"),
        auth=auth,
        scheme=scheme,
        verify=verify,
        ca_path=ca_path,
        encryption=encryption,
        path=values.get("path", "wsman"),
        operation_timeout=operation_timeout,
        read_timeout=read_timeout,
        connect_timeout=math.ceil(values.get("connect_timeout", 30)),
        command_timeout=float(values.get("command_timeout", 600.0)),
        sessions=values.get("sessions", 8),
        idle_timeout=math.ceil(values["idle_timeout"]) if "idle_timeout" in values else None,
        nat_prefix=values.get("nat_prefix"),
        spn_host=values.get("spn_host"),
    )
