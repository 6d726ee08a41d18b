"""HTTP authentication (Basic, Negotiate with NTLM or Kerberos, CredSSP) and WinRM message encryption, per TCP
connection.

Kerberos is accepted with a keytab holding the host's service keys (``HTTP/<host>``), CredSSP (HTTPS only) with a
TLS certificate of the host's own and either NTLM or Kerberos inside it; pyspnego's acceptors do the protocol work.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import re
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spnego
from spnego._ntlm_raw.crypto import ntowfv1  # No public API hashes a password for the store.
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
_BOUNDARY = b"--Encrypted Boundary"
_OCTET_STREAM = b"\tContent-Type: application/octet-stream\r\n"
_LENGTH = re.compile(rb"Length=(\d+)")

# pyspnego's NTLM acceptor reads its credential file from the NTLM_USER_FILE environment
# variable at step time, and MIT's GSSAPI its keytab from KRB5_KTNAME; several hosts in one
# process each have their own files, so the variables are swapped under this lock for the
# duration of a step.
_NTLM_ENV_LOCK = threading.Lock()


class AuthenticationFailed(Exception):
    """The client's credentials were rejected (HTTP 401); ``www_authenticate``: a final token to send with it."""

    def __init__(self, message: str, www_authenticate: str | None = None) -> None:
        super().__init__(message)
        self.www_authenticate = www_authenticate


class EncryptionError(ValueError):
    """An encrypted body could not be unwrapped."""


@dataclass(frozen=True)
class Credentials:
    """The single local account the loopback host accepts."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    def matches(self, username: str, password: str) -> bool:
        """Return whether the pair matches (user name case-insensitively, like Windows)."""
        bare_user = username.rsplit("\\", 1)[-1].split("@", 1)[0]
        user_ok = hmac.compare_digest(bare_user.casefold().encode(), self.username.casefold().encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


class NTLMUserFile:
    """A private credential file for pyspnego's NTLM acceptor (smbpasswd format: hashes only), and the host's
    Kerberos keytab, if it has one."""

    def __init__(self, credentials: Credentials, keytab: Path | None = None) -> None:
        self.keytab = keytab
        self._dir = tempfile.TemporaryDirectory(prefix="polyvisor-ntlm-")
        self.path = Path(self._dir.name) / "ntlm_users"
        self.path.touch(mode=0o600)
        # smbpasswd lines "[DOMAIN\\]USER:UID:LM:NT:FLAGS:LCT" keep the password off disk and allow
        # any character in it. pyspnego matches the domain the client sends exactly, so the
        # spellings clients use for a local account are all listed.
        nt_hash = ntowfv1(credentials.password).hex().upper()
        domains = ["", ".", "localhost", "WORKGROUP", socket.gethostname().split(".")[0]]
        lines = []
        for domain in dict.fromkeys(d.upper() for d in domains):
            user = f"{domain}\\{credentials.username}" if domain else credentials.username
            lines.append(f"{user}:1000:{'0' * 32}:{nt_hash}:[U]:LCT-00000000")
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @contextlib.contextmanager
    def _visible(self) -> Iterator[None]:
        """Point NTLM_USER_FILE at this file (and KRB5_KTNAME at the keytab, or at none) for the duration."""
        values = {
            "NTLM_USER_FILE": str(self.path),
            # Without a keytab of its own the host must not find anyone else's (or the system's).
            "KRB5_KTNAME": f"FILE:{self.keytab}" if self.keytab else f"FILE:{self.path.parent}/no.keytab",
        }
        with _NTLM_ENV_LOCK:
            previous = {name: os.environ.get(name) for name in values}
            os.environ.update(values)
            try:
                yield
            finally:
                for name, value in previous.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def new_context(self, protocol: str = "negotiate", **kwargs: Any) -> Any:
        """Return a fresh acceptor: Negotiate (raw NTLM, raw Kerberos, or either in SPNEGO) or CredSSP."""
        with self._visible():
            return spnego.server(protocol=protocol, **kwargs)

    def step(self, context: Any, token: bytes, channel_binding_data: bytes | None = None) -> bytes | None:
        """Step ``context`` with this file visible to pyspnego."""
        # Passed on every step: pyspnego's Negotiate acceptor does not hand bindings given at
        # construction to the NTLM context it creates inside.
        bindings = None
        if channel_binding_data is not None:
            bindings = GssChannelBindings(application_data=channel_binding_data)
        with self._visible():
            result: bytes | None = context.step(token, channel_bindings=bindings)
            return result

    def close(self) -> None:
        """Remove the file."""
        self._dir.cleanup()


@dataclass
class AuthOutcome:
    """What the HTTP layer should do after looking at the Authorization header."""

    authenticated: bool
    #: Value for WWW-Authenticate (a challenge on 401, the final token on 200), if any.
    www_authenticate: str | None = None


class ConnectionAuth:
    """Authentication state of one TCP connection (NTLM is connection-oriented)."""

    def __init__(
        self,
        credentials: Credentials,
        user_file: NTLMUserFile,
        allow_basic: bool,
        channel_binding_data: bytes | None = None,
        *,
        allow_credssp: bool = False,
    ) -> None:
        self._credentials = credentials
        # Over HTTPS the NTLM exchange must carry the TLS certificate's hash (channel binding).
        self._channel_binding_data = channel_binding_data
        self._user_file = user_file
        self._allow_basic = allow_basic
        self._allow_credssp = allow_credssp
        self._context: Any = None
        self._scheme = "Negotiate"
        #: The security context once Negotiate completed (used for message encryption).
        self.session: Any = None
        #: Whether the session holds the user's credentials for a second hop (CredSSP delegated them).
        self.delegated = False
        #: The protocol of the last completed authentication: basic, ntlm, kerberos or credssp.
        self.protocol: str | None = None

    def challenge_header(self) -> list[str]:
        """Return the WWW-Authenticate values offered on an unauthenticated 401."""
        offers = ["Negotiate"]
        if self._allow_basic:
            offers.append('Basic realm="WSMAN"')
        if self._allow_credssp:
            offers.append("CredSSP")
        return offers

    def authenticate(self, header: str | None) -> AuthOutcome:
        """Process one request's Authorization header."""
        if not header:
            # NTLM authenticates the connection, not each request.
            return AuthOutcome(authenticated=self.session is not None)
        scheme, _, value = header.strip().partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "basic":
            return self._basic(value.strip())
        if scheme_l in ("negotiate", "ntlm", "kerberos"):
            return self._negotiate(scheme, value.strip())
        if scheme_l == "credssp":
            return self._credssp_step(scheme, value.strip())
        raise AuthenticationFailed(f"unsupported authentication scheme {scheme!r}")

    def _basic(self, value: str) -> AuthOutcome:
        if not self._allow_basic:
            raise AuthenticationFailed("Basic authentication is disabled")
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthenticationFailed("malformed Basic credentials") from exc
        username, sep, password = decoded.partition(":")
        if not sep or not self._credentials.matches(username, password):
            raise AuthenticationFailed("the user name or password is incorrect")
        self.protocol = "basic"
        return AuthOutcome(authenticated=True)

    def _negotiate(self, scheme: str, value: str) -> AuthOutcome:
        try:
            token = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise AuthenticationFailed("malformed Negotiate token") from exc
        if self._context is None or self._context.complete or scheme != self._scheme:
            # A new handshake on this connection replaces whatever was there.
            self._context = self._user_file.new_context()
            self._scheme = scheme
            self.session = None
            self.delegated = False
        try:
            out_token = self._user_file.step(self._context, token, self._channel_binding_data)
        except SpnegoError as exc:
            self._context = None
            # A KRB-ERROR token (a clock skew, say) goes back with the 401 (RFC 4559 section 5) when the acceptor
            # hands one out.
            error_token = getattr(exc.base_error, "token", None)
            header = f"{scheme} {base64.b64encode(error_token).decode()}" if error_token else None
            raise AuthenticationFailed(f"the credentials were rejected ({exc})", header) from exc
        except Exception as exc:
            # pyspnego 0.12 fails this way on a Kerberos ticket MIT's acceptor refused with an error token (a ticket
            # from a client whose clock is off): a refusal all the same, never a dropped connection.
            self._context = None
            raise AuthenticationFailed(f"the Kerberos ticket was refused ({type(exc).__name__})") from exc
        header = f"{scheme} {base64.b64encode(out_token).decode()}" if out_token else None
        if not self._context.complete:
            return AuthOutcome(authenticated=False, www_authenticate=header)
        if not self._user_matches(self._context):
            self._context = None
            raise AuthenticationFailed("unknown user")
        self.session = self._context
        self.protocol = str(self._context.negotiated_protocol or "negotiate")
        return AuthOutcome(authenticated=True, www_authenticate=header)

    def _credssp_step(self, scheme: str, value: str) -> AuthOutcome:
        if not self._allow_credssp:
            # Windows: WinRM's Auth/CredSSP is false until Enable-WSManCredSSP -Role Server.
            raise AuthenticationFailed("CredSSP authentication is disabled")
        try:
            token = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise AuthenticationFailed("malformed CredSSP token") from exc
        if self._context is None or self._context.complete or scheme.lower() != self._scheme.lower():
            # CredSSP runs a TLS channel of its own inside the Authorization headers; pyspnego's acceptor presents a
            # self-signed certificate it makes once per process (ASSUMPTION, see docs/hyperv-fidelity.md).
            self._context = self._user_file.new_context("credssp")
            self._scheme = scheme
            self.session = None
            self.delegated = False
        try:
            out_token = self._user_file.step(self._context, token)
        except SpnegoError as exc:
            self._context = None
            raise AuthenticationFailed(f"the CredSSP exchange failed ({exc})") from exc
        header = f"{scheme} {base64.b64encode(out_token).decode()}" if out_token else None
        if not self._context.complete:
            return AuthOutcome(authenticated=False, www_authenticate=header)
        context, self._context = self._context, None
        # The client delegated its user name and password (TSPasswordCreds): Windows logs on with them, so a
        # delegated password that does not match fails the logon even after the inner NTLM/Kerberos succeeded.
        delegated = context.get_extra_info("client_credential")
        user = getattr(delegated, "username", "") or ""
        password = getattr(delegated, "password", "") or ""
        if not self._user_matches(context) or not self._credentials.matches(user, password):
            raise AuthenticationFailed("the delegated credentials were rejected")
        self.session = context
        self.delegated = True
        self.protocol = "credssp"
        return AuthOutcome(authenticated=True, www_authenticate=header)

    def _user_matches(self, context: Any) -> bool:
        client = str(getattr(context, "client_principal", "") or "")
        bare = client.rsplit("\\", 1)[-1].split("@", 1)[0]
        return bare.casefold() == self._credentials.username.casefold()


def is_encrypted(content_type: str) -> bool:
    """Return whether a Content-Type announces a WinRM-encrypted body."""
    lowered = content_type.lower()
    return lowered.startswith(("multipart/encrypted", "multipart/x-multi-encrypted")) and (
        ENCRYPTED_PROTOCOL.lower() in lowered
    )


def unwrap_body(context: Any, body: bytes) -> bytes:
    """Decrypt a ``multipart/encrypted`` body with the connection's security context."""
    parts = [part for part in body.split(_BOUNDARY + b"\r\n") if part]
    message = b""
    if len(parts) < 2 or len(parts) % 2:
        raise EncryptionError("malformed multipart/encrypted body")
    for index in range(0, len(parts), 2):
        match = _LENGTH.search(parts[index])
        if match is None:
            raise EncryptionError("encrypted part lacks its original length")
        payload = parts[index + 1]
        if payload.endswith(_BOUNDARY + b"--\r\n"):
            payload = payload[: -len(_BOUNDARY + b"--\r\n")]
        if not payload.startswith(_OCTET_STREAM):
            raise EncryptionError("encrypted part lacks its octet-stream header")
        payload = payload[len(_OCTET_STREAM) :]
        (header_length,) = struct.unpack("<i", payload[:4])
        header = payload[4 : 4 + header_length]
        try:
            plain: bytes = context.unwrap_winrm(header, payload[4 + header_length :])
        except SpnegoError as exc:
            raise EncryptionError("the encrypted message failed its integrity check") from exc
        if len(plain) != int(match.group(1)):
            raise EncryptionError("decrypted length does not match the announced length")
        message += plain
    return message


def wrap_body(context: Any, message: bytes) -> tuple[str, bytes]:
    """Encrypt ``message``; return the Content-Type and the body."""
    wrapped = context.wrap_winrm(message)
    payload = (
        _BOUNDARY
        + b"\r\n\tContent-Type: "
        + ENCRYPTED_PROTOCOL.encode()
        + b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
        + str(len(message) + wrapped.padding_length).encode()
        + b"\r\n"
        + _BOUNDARY
        + b"\r\n"
        + _OCTET_STREAM
        + struct.pack("<i", len(wrapped.header))
        + wrapped.header
        + wrapped.data
        + _BOUNDARY
        + b"--\r\n"
    )
    content_type = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
    return content_type, payload
