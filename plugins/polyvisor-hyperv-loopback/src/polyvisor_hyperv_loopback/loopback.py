"""LoopbackHost: a WinRM/PSRP endpoint on 127.0.0.1 in front of the in-memory Hyper-V engine."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from .engine_api import HostEngine
from .wire.auth import Credentials, NTLMUserFile
from .wire.listener import ListenerPolicy, RequestCounter, WSManHTTPServer
from .wire.psrp_shell import PSRPShell
from .wire.service import DEFAULT_MAX_ENVELOPE_SIZE, WSManService
from .wire.shell import DEFAULT_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT, Shell
from .wire.soap import ACTION_RECEIVE, Request
from .wire.tls import LoopbackPKI, create_loopback_pki

__all__ = ["LoopbackHost"]


class LoopbackHost:
    """A Windows/Hyper-V host stand-in that real pywinrm/pypsrp clients can talk to.

    Use as a context manager; ``url`` is the WS-Management endpoint (``/wsman``).
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        https: bool = False,
        port: int = 0,
        state_dir: str | Path | None = None,
        engine: HostEngine | None = None,
        allow_basic: bool = True,
        allow_unencrypted: bool = False,
        max_envelope_size: int = DEFAULT_MAX_ENVELOPE_SIZE,
        cmdlet_latency: float | None = None,
        kvp_delay: float | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_idle_timeout: float = MAX_IDLE_TIMEOUT,
        keytab: str | Path | None = None,
        allow_credssp: bool = False,
    ) -> None:
        """``kvp_delay``: seconds after a VM starts until its guest reports its addresses (KVP), None for the
        engine's default (3); ``idle_timeout``: seconds a shell or runspace pool may idle before it is deleted, when
        the client asks for no IdleTimeOut; ``max_idle_timeout``: the most a client may ask for (Windows: 7200 and
        2147483.647); ``keytab``: the host's Kerberos service keys (``HTTP/<host>``, see
        :class:`~polyvisor_hyperv_loopback.realm.KerberosRealm`), so that Negotiate accepts Kerberos; ``allow_credssp``:
        accept CredSSP (HTTPS only), as Windows does after ``Enable-WSManCredSSP -Role Server``."""
        if allow_credssp and not https:
            raise ValueError("the loopback host offers CredSSP on HTTPS only; pass https=True")
        self._keytab = Path(keytab) if keytab is not None else None
        self._credentials = Credentials(username, password)
        self._https = https
        self._requested_port = port
        self._own_state_dir: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._own_state_dir = tempfile.TemporaryDirectory(prefix="polyvisor-hyperv-host-")
            state_dir = self._own_state_dir.name
        self.state_dir = Path(state_dir)
        self._engine: HostEngine | None = engine
        self._cmdlet_latency = cmdlet_latency
        self._kvp_delay = kvp_delay
        self.policy = ListenerPolicy(
            allow_basic=allow_basic, allow_unencrypted=allow_unencrypted, allow_credssp=allow_credssp
        )
        self._max_envelope_size = max_envelope_size
        self._idle_timeout = idle_timeout
        self._max_idle_timeout = max_idle_timeout
        self._counter = RequestCounter()
        self._server: WSManHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._user_file: NTLMUserFile | None = None
        self._pki: LoopbackPKI | None = None
        self._service: WSManService | None = None

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"LoopbackHost(username={self._credentials.username!r}, {state})"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LoopbackHost:
        """Start listening (idempotent)."""
        if self._server is not None:
            return self
        if self._engine is None:
            from .engine import Engine  # Heavy (tree-sitter): only when serving.

            self._engine = Engine()
        engine = self._engine
        hyperv = getattr(engine, "host", None)
        if self._cmdlet_latency is not None and hyperv is not None:
            # Seconds each Hyper-V cmdlet takes (the engine's in-memory host; shared by listeners on one engine).
            hyperv.cmdlet_latency = self._cmdlet_latency
        if self._kvp_delay is not None and hyperv is not None:
            hyperv.kvp_delay = self._kvp_delay
        self._user_file = NTLMUserFile(self._credentials, self._keytab)
        tls = None
        binding = None
        if self._https:
            self._pki = create_loopback_pki(self.state_dir / "tls")
            tls = self._pki.server_context()
            binding = self._pki.channel_binding_data()

        def psrp_factory(uri: str, owner: str, client_ip: str, request: Request) -> Shell:
            return PSRPShell(uri, owner, client_ip, request, engine)

        self._service = WSManService(
            engine, psrp_factory, self._max_envelope_size, self._idle_timeout, self._max_idle_timeout
        )
        self._server = WSManHTTPServer(
            self._requested_port,
            self._service,
            self._credentials,
            self._user_file,
            self.policy,
            self._counter,
            tls,
            binding,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"wsman-{self._server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, drop connections and close every shell."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._service is not None:
            self._service.close()
        if self._user_file is not None:
            self._user_file.close()
            self._user_file = None

    def close(self) -> None:
        """Stop and remove the state directory if the host created it."""
        self.stop()
        if self._own_state_dir is not None:
            self._own_state_dir.cleanup()
            self._own_state_dir = None

    def __enter__(self) -> LoopbackHost:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what clients need ----------------------------------------------------------------

    def _running(self) -> WSManHTTPServer:
        if self._server is None:
            raise RuntimeError("the loopback host is not running")
        return self._server

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:40123/wsman``."""
        return self._running().url

    @property
    def port(self) -> int:
        """The TCP port the listener is bound to."""
        return self._running().port

    @property
    def host(self) -> str:
        """The address the listener is bound to."""
        return "127.0.0.1"

    @property
    def https(self) -> bool:
        """Whether the listener speaks TLS."""
        return self._https

    @property
    def username(self) -> str:
        """The account the host accepts."""
        return self._credentials.username

    @property
    def ca_path(self) -> Path | None:
        """The PEM file of the CA that signed the HTTPS certificate (None for HTTP)."""
        return self._pki.ca_path if self._pki is not None else None

    @property
    def engine(self) -> Any:
        """The engine serving PowerShell (``polyvisor_hyperv_loopback.engine.Engine`` by default)."""
        return self._engine

    # -- test controls --------------------------------------------------------------------

    @property
    def requests_served(self) -> int:
        """HTTP requests received so far (authentication round trips included)."""
        return self._counter.total

    def requests_per_connection(self) -> dict[int, int]:
        """HTTP requests per TCP connection, keyed by connection number (1, 2, ... in order)."""
        return self._counter.per_connection()

    def authentications(self) -> dict[str, int]:
        """Completed authentications so far, per protocol: ``basic``, ``ntlm``, ``kerberos``, ``credssp``."""
        return self._counter.authentications()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far."""
        return len(self._counter.per_connection())

    @property
    def open_shells(self) -> int:
        """Shells created and not yet deleted."""
        return self._service.shell_count if self._service is not None else 0

    def wait_for_open_shells(self, count: int, timeout: float) -> bool:
        """Wait until exactly ``count`` shells are open (say, after the others idled out); return whether they are."""
        if self._service is None:
            raise RuntimeError("the loopback host is not running")
        return self._service.wait_for_shell_count(count, timeout)

    def receives(self) -> tuple[int, int]:
        """Receives held now by the runspace pools, and Receives they were sent so far (to await a client's Receive)."""
        if self._service is None:
            raise RuntimeError("the loopback host is not running")
        return self._service.receives()

    def drop_connections(self) -> int:
        """Abort every client connection (the host keeps running); return how many."""
        return self._running().drop_connections()

    def drop_shells(self) -> int:
        """Forget every shell and runspace pool, as Windows does when one idles out; return how many."""
        if self._service is None:
            raise RuntimeError("the loopback host is not running")
        return self._service.drop_shells()

    def stall_next(self, action: str | None = ACTION_RECEIVE, seconds: float | None = None) -> None:
        """Hold back the next WS-Management operation (Receive by default).

        ``seconds=None``: it waits its OperationTimeout out and fails with the TimedOut fault.
        Otherwise it is served normally after ``seconds`` (use a value beyond the client's read
        timeout to provoke a client-side timeout). :meth:`release_stalls` ends the wait early.
        """
        if self._service is None:
            raise RuntimeError("the loopback host is not running")
        self._service.stall_next(action, seconds)

    def release_stalls(self) -> None:
        """Let every stalled operation proceed now."""
        if self._service is not None:
            self._service.release_stalls()
