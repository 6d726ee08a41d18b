"""Connection URIs: ``driver[+transport]://[user[:password]@][host][:port]/path?params``.

Every libvirt URI form is accepted and handed to libvirt unchanged; the same grammar names Hyper-V hosts
(``hyperv://admin@hv01:5986/?transport=psrp``). A :class:`URI` is immutable and never shows its password when
rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from polyvisor.errors import ValidationError

__all__ = ["URI"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9.-]*(\+[A-Za-z][A-Za-z0-9.-]*)?$")
_MASK = "***"


@dataclass(frozen=True, slots=True)
class URI:
    """An immutable, parsed connection URI."""

    driver: str
    transport: str | None = None
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    raw: str = ""
    """The text as given, password included; pass it to native libraries, never print it."""

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse a URI; raise :class:`~polyvisor.errors.ValidationError` naming what is wrong."""
        if not isinstance(text, str):
            raise ValidationError(f"must be a string, got {type(text).__name__}", field="uri")
        if "://" not in text and not text.endswith(":///"):
            scheme = text.split(":", 1)[0]
            if ":" not in text or not _SCHEME.match(scheme):
                raise ValidationError(
                    f"{_safe(text)!r} is not a URI such as 'test:///default' or 'qemu:///system' "
                    "(nor a connection name from the config file)",
                    field="uri",
                )
        if any(ch in text for ch in "\r\n\t\x00"):
            raise ValidationError("contains a control character", field="uri")
        parts = urlsplit(text)
        if not parts.scheme or not _SCHEME.match(parts.scheme):
            raise ValidationError(f"{_safe(text)!r} has no valid scheme", field="uri")
        driver, _, transport = parts.scheme.partition("+")
        try:
            port = parts.port
        except ValueError:
            raise ValidationError(f"{_safe(text)!r} has an invalid port", field="uri") from None
        return cls(
            driver=driver.lower(),
            transport=transport.lower() or None,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            host=parts.hostname,
            port=port,
            path=parts.path,
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            raw=text,
        )

    @property
    def scheme(self) -> str:
        """``driver`` or ``driver+transport``."""
        return f"{self.driver}+{self.transport}" if self.transport else self.driver

    @property
    def params(self) -> Mapping[str, str]:
        """Query parameters (the last value wins when one repeats)."""
        return dict(self.query)

    def param(self, name: str, default: str | None = None) -> str | None:
        """Return one query parameter."""
        return self.params.get(name, default)

    @property
    def is_local(self) -> bool:
        """Return whether the URI names no remote host."""
        return self.host in (None, "", "localhost", "127.0.0.1", "::1")

    def render(self, *, hide_password: bool = True) -> str:
        """Render the URI; the password is masked unless explicitly asked for."""
        netloc = ""
        if self.username is not None:
            netloc = quote(self.username, safe="")
            if self.password is not None:
                netloc += ":" + (_MASK if hide_password else quote(self.password, safe=""))
            netloc += "@"
        if self.host:
            netloc += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            netloc += f":{self.port}"
        text = f"{self.scheme}://{netloc}{self.path}"
        if self.query:
            text += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in self.query)
        return text

    def without_password(self) -> URI:
        """Return a copy with the password removed (``raw`` re-rendered)."""
        stripped = replace(self, password=None, raw="")
        return replace(stripped, raw=stripped.render())

    @property
    def display_host(self) -> str:
        """The host as messages show it."""
        return self.host or "localhost"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"URI({self.render()!r})"


def _safe(text: str) -> str:
    # Mask a password in text that did not parse, so even error messages cannot leak it.
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1" + _MASK + "@", text)
