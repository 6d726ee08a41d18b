"""The HTTP(S) listener in front of the WS-Management service: keep-alive, auth, encryption."""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .auth import (
    AuthenticationFailed,
    ConnectionAuth,
    Credentials,
    EncryptionError,
    NTLMUserFile,
    is_encrypted,
    unwrap_body,
    wrap_body,
)
from .service import WSManService

_log = logging.getLogger(__name__)

WSMAN_PATH = "/wsman"
_SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
#: Requests far beyond any envelope limit are refused before being read into memory.
_MAX_BODY = 16 * 1024 * 1024


@dataclass(frozen=True)
class ListenerPolicy:
    """The WinRM service settings that decide which requests are acceptable."""

    allow_basic: bool = True
    #: Windows' AllowUnencrypted: whether plain-text SOAP may travel over HTTP.
    allow_unencrypted: bool = False
    #: Windows' Auth/CredSSP (Enable-WSManCredSSP -Role Server); the loopback host offers it on HTTPS only.
    allow_credssp: bool = False


class RequestCounter:
    """Counts HTTP requests, in total and per TCP connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._per_connection: dict[int, int] = {}
        self._protocols: dict[str, int] = {}
        self._ids = itertools.count(1)

    def new_connection(self) -> int:
        with self._lock:
            connection_id = next(self._ids)
            self._per_connection[connection_id] = 0
            return connection_id

    def authenticated(self, protocol: str) -> None:
        with self._lock:
            self._protocols[protocol] = self._protocols.get(protocol, 0) + 1

    def authentications(self) -> dict[str, int]:
        """Return completed authentications per protocol (basic, ntlm, kerberos, credssp)."""
        with self._lock:
            return dict(self._protocols)

    def count(self, connection_id: int) -> None:
        with self._lock:
            self._total += 1
            self._per_connection[connection_id] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def per_connection(self) -> dict[int, int]:
        """Return requests served per connection id (connections numbered from 1, in order)."""
        with self._lock:
            return dict(self._per_connection)


class WSManHTTPServer(ThreadingHTTPServer):
    """One listener (HTTP or HTTPS) on 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        port: int,
        service: WSManService,
        credentials: Credentials,
        user_file: NTLMUserFile,
        policy: ListenerPolicy,
        counter: RequestCounter,
        tls: ssl.SSLContext | None = None,
        channel_binding_data: bytes | None = None,
    ) -> None:
        self.service = service
        self.credentials = credentials
        self.user_file = user_file
        self.policy = policy
        self.counter = counter
        self.tls = tls
        self.channel_binding_data = channel_binding_data
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _WSManHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{WSMAN_PATH}"

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def drop_connections(self) -> int:
        """Abort every open client connection; return how many there were."""
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(connections)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes and clients vanishing mid-request are expected in tests.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _WSManHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    server: WSManHTTPServer

    def setup(self) -> None:
        # Headers and body leave in separate writes; with Nagle on, the body would wait for the
        # client's delayed ACK (~40 ms per request).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.tls is not None:
            raw: socket.socket = self.request
            raw.settimeout(10)
            try:
                # wrap_socket detaches ``raw``; the TLS socket is what must be closed later.
                self.request = self.server.tls.wrap_socket(raw, server_side=True)
            except OSError:
                raw.close()
                raise
        self.server.track(self.request, alive=True)
        super().setup()
        self._connection_id = self.server.counter.new_connection()
        self._auth = ConnectionAuth(
            self.server.credentials,
            self.server.user_file,
            self.server.policy.allow_basic,
            self.server.channel_binding_data,
            allow_credssp=self.server.policy.allow_credssp,
        )

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, alive=False)
            if self.server.tls is not None:
                self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        www_authenticate: list[str] | None = None,
    ) -> None:
        self.send_response(status)
        for value in www_authenticate or []:
            self.send_header("WWW-Authenticate", value)
        if body:
            self.send_header("Content-Type", content_type or _SOAP_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self) -> None:
        body = self._read_body()
        self.server.counter.count(self._connection_id)
        if body is None:
            self.close_connection = True
            self._respond(413)
            return
        if self.path.split("?", 1)[0].rstrip("/").lower() != WSMAN_PATH:
            self._respond(404)
            return
        auth_header = self.headers.get("Authorization")
        try:
            outcome = self._auth.authenticate(auth_header)
        except AuthenticationFailed as exc:
            _log.info("authentication failed: %s", exc)
            final = [exc.www_authenticate] if exc.www_authenticate else []
            self._respond(401, www_authenticate=final or self._auth.challenge_header())
            return
        if not outcome.authenticated:
            challenge = [outcome.www_authenticate] if outcome.www_authenticate else None
            self._respond(401, www_authenticate=challenge or self._auth.challenge_header())
            return
        if auth_header and self._auth.protocol is not None:
            self.server.counter.authenticated(self._auth.protocol)
        final_token = [outcome.www_authenticate] if outcome.www_authenticate else None
        basic = (auth_header or "").lower().startswith("basic")
        encrypted = is_encrypted(self.headers.get("Content-Type", ""))
        plain_http = self.server.tls is None and not self.server.policy.allow_unencrypted
        # Like Windows with AllowUnencrypted=false: Basic over HTTP and plain-text SOAP over HTTP
        # are rejected; an empty body (the clients' authentication probe) is fine.
        if plain_http and (basic or (body and not encrypted)):
            self._respond(401, www_authenticate=self._auth.challenge_header())
            return
        if encrypted:
            if self._auth.session is None:
                self._respond(401, www_authenticate=self._auth.challenge_header())
                return
            try:
                body = unwrap_body(self._auth.session, body)
            except EncryptionError as exc:
                _log.info("could not decrypt a request: %s", exc)
                self._respond(400)
                return
        if not body:
            self._respond(200, www_authenticate=final_token)
            return
        reply = self.server.service.handle(
            body,
            owner=self.server.credentials.username,
            client_ip=self.client_address[0],
            endpoint=self.server.url,
            machine=_machine(self.headers.get("Host"), str(self.server.server_address[0])),
            client_gone=self._client_gone,
        )
        content_type = _SOAP_CONTENT_TYPE
        payload = reply.body
        if encrypted:
            content_type, payload = wrap_body(self._auth.session, payload)
        try:
            self._respond(reply.status, payload, content_type, www_authenticate=final_token)
        except OSError:
            # The client gave up (read timeout) or the connection was dropped on purpose.
            self.close_connection = True

    def _client_gone(self) -> bool:
        """Whether the client closed or reset the connection while its request is being served."""
        sock: socket.socket = self.request
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            # Peek below TLS (an SSLSocket refuses flags): end of stream or a reset means the client is gone.
            return socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


def _machine(host_header: str | None, fallback: str) -> str:
    """The host name the client addressed (the Host header without its port), as Windows names it in faults."""
    host = (host_header or "").strip()
    if host.startswith("["):  # [IPv6]:port
        return host[1 : host.index("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host or str(fallback)
