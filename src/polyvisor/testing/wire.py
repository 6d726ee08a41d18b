"""A TCP proxy that makes the wire fail: for tests that prove every call stays bounded when the network does not.

:class:`FaultyProxy` listens on 127.0.0.1 and forwards each connection to a target. What it does is drawn from
``random.Random`` generators seeded by the test, in the proportions of a :class:`WireFaults`: for each new
connection, and for each chunk (one read of either direction) a connection forwards, so that long-lived connections
(HTTP keep-alive, libvirt's one RPC socket) keep meeting faults:

* **refuse** (per connection): it is accepted and reset before any byte passes, as a ``REJECT --reject-with
  tcp-reset`` firewall or a listener that is going away answers. :meth:`FaultyProxy.refuse` closes the listener
  instead, for a real ECONNREFUSED until :meth:`FaultyProxy.heal`;
* **reset** (per chunk): instead of forwarding the chunk, both ends get a TCP reset (``SO_LINGER`` 0), as when a
  middlebox or the host's stack drops the connection;
* **stall** (per chunk): nothing moves either way for 1-10 s (``stall_seconds``), then the connection goes on,
  delivering what it held, as a congested or flapping route does (a client that gave up may see its request arrive
  late).

:meth:`FaultyProxy.heal` ends every fault at once (stalled connections resume, new ones pass untouched);
:meth:`FaultyProxy.break_` starts them again. The same seed draws the same faults for the n-th accepted connection
and its n-th chunk, so a failure reproduces from the seed the test prints (:attr:`FaultyProxy.strikes` lists every
fault that struck); which request travels on a connection depends on the threads' timing. Only this machine is
served: tests never send traffic elsewhere.

Example::

    faults = WireFaults(reset=0.01, stall=0.01, refuse=0.1)
    with FaultyProxy(("127.0.0.1", 5985), seed=7, faults=faults) as proxy:
        conn = polyvisor.connect(f"hyperv://admin@127.0.0.1:{proxy.port}/?scheme=http", password="...")
        ...
        proxy.heal()
"""

from __future__ import annotations

import contextlib
import enum
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["Fault", "FaultyProxy", "Strike", "WireFaults"]

_CHUNK = 64 * 1024
_LOOPBACK = "127.0.0.1"


class Fault(enum.Enum):
    """What the proxy did to a connection."""

    RESET = "reset"
    STALL = "stall"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class WireFaults:
    """How often each fault strikes, and how long a stall lasts."""

    reset: float = 0.0
    """The share of chunks (reads of either direction) that reset their connection instead of passing."""
    stall: float = 0.0
    """The share of chunks that stall their connection before passing."""
    refuse: float = 0.0
    """The share of new connections reset before any byte passes."""
    stall_seconds: tuple[float, float] = (1.0, 10.0)
    """The shortest and longest stall, in seconds (drawn uniformly)."""

    def __post_init__(self) -> None:
        for name in ("reset", "stall", "refuse"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be a share from 0 to 1, got {share!r}")
        if self.reset + self.stall > 1.0:
            raise ValueError("reset + stall must not exceed 1 (both are shares of the same chunks)")
        low, high = self.stall_seconds
        if not 0.0 <= low <= high:
            raise ValueError(f"stall_seconds must be (shortest, longest), 0 <= shortest <= longest: {low, high}")


NO_FAULTS = WireFaults()


@dataclass(frozen=True, slots=True)
class Strike:
    """A fault that struck: the ``connection``-th accepted connection, at its ``chunk``-th chunk (0 for a refusal)."""

    connection: int
    chunk: int
    fault: Fault
    stall_seconds: float = 0.0


class FaultyProxy:
    """A fault-injecting TCP proxy on 127.0.0.1 in front of ``target``; a context manager (or :meth:`start`,
    :meth:`close`). ``port`` 0 picks a free one (:attr:`port` says which)."""

    def __init__(self, target: tuple[str, int], *, seed: int, faults: WireFaults = NO_FAULTS, port: int = 0) -> None:
        if target[0] not in (_LOOPBACK, "localhost", "::1"):
            raise ValueError(f"the proxy forwards only to this machine, not to {target[0]!r}")
        self.target = target
        self.seed = seed
        self._random = random.Random(seed)
        self._faults = faults
        self._requested_port = port
        self._port = 0
        self._lock = threading.Lock()
        self._healed = threading.Event()
        self._closed = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._accepted = 0
        self._carried = [0, 0]  # bytes forwarded to the target, and back to the clients
        self.strikes: list[Strike] = []
        """Every fault that struck, in order."""

    def __repr__(self) -> str:
        state = "healed" if self._healed.is_set() else "breaking"
        return f"<FaultyProxy 127.0.0.1:{self._port} -> {self.target[0]}:{self.target[1]} seed={self.seed} {state}>"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        return self._port

    def hold(self, seconds: float) -> None:
        """Wait ``seconds`` (a stall), or less if the proxy heals or closes meanwhile."""
        self._healed.wait(max(seconds, 0.0))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    @property
    def faults(self) -> WireFaults:
        """The faults new connections are drawn from (none while healed)."""
        return NO_FAULTS if self._healed.is_set() else self._faults

    def start(self) -> None:
        """Listen and start forwarding."""
        self._listen(self._requested_port)

    def heal(self) -> None:
        """End every fault: stalled connections resume now, new ones pass untouched, a refusing listener listens."""
        self._healed.set()
        if self._listener is None and not self._closed.is_set() and self._port:
            self._listen(self._port)

    def break_(self, faults: WireFaults | None = None) -> None:
        """Start failing again, with ``faults`` if given (else the ones before)."""
        if faults is not None:
            self._faults = faults
        self._healed.clear()

    def refuse(self) -> None:
        """Close the listener: connects are refused (ECONNREFUSED) until :meth:`heal`; open connections stay."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it; close() alone does not
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)

    def drop(self) -> int:
        """Reset every connection open now (both ends), as a middlebox dropping them would; return how many."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)
        return len(sockets) // 2

    @property
    def connections(self) -> int:
        """How many connections were accepted so far."""
        return self._accepted

    @property
    def carried(self) -> tuple[int, int]:
        """How many bytes were forwarded so far (or are being): from the clients to the target, and back."""
        with self._lock:
            return self._carried[0], self._carried[1]

    def carry(self, to_target: bool, count: int) -> None:
        """Record ``count`` bytes forwarded (for the connections' pumps)."""
        with self._lock:
            self._carried[0 if to_target else 1] += count

    def count(self, fault: Fault) -> int:
        """How many times ``fault`` struck so far."""
        with self._lock:
            return sum(1 for strike in self.strikes if strike.fault is fault)

    def note(self, strike: Strike) -> None:
        """Record a fault that struck (for the connections' pumps)."""
        with self._lock:
            self.strikes.append(strike)

    def close(self) -> None:
        """Stop listening and drop every connection; safe to call twice."""
        self._closed.set()
        self._healed.set()  # wake stalled pumps so that they see the close
        self.refuse()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)

    # -- the machinery ------------------------------------------------------------------------------------------
    def _listen(self, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((_LOOPBACK, port))
        listener.listen(64)
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name=f"wire-proxy-{self._port}", daemon=True
        )
        self._acceptor.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed (refuse or close)
            index = self._accepted
            self._accepted += 1
            if self._random.random() < self.faults.refuse:
                self.note(Strike(index, 0, Fault.REFUSE))
                _reset(client)
                continue
            threading.Thread(
                target=self._serve, args=(client, index), name=f"wire-proxy-conn-{index}", daemon=True
            ).start()

    def _serve(self, client: socket.socket, index: int) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(client)  # the target is down: the client sees its connection reset
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.update((client, upstream))
        # A generator per connection: its n-th chunk meets the same fault whatever the other connections do.
        link = _Link(self, client, upstream, index, random.Random(self.seed * 1_000_003 + index))
        pumps = [
            threading.Thread(target=link.pump, args=(client, upstream), daemon=True),
            threading.Thread(target=link.pump, args=(upstream, client), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        with self._lock:
            self._sockets.difference_update((client, upstream))
        _close(client)
        _close(upstream)


class _Link:
    """One proxied connection: two pumps sharing its chunk count, its generator and its stall."""

    def __init__(
        self, proxy: FaultyProxy, client: socket.socket, upstream: socket.socket, index: int, draws: random.Random
    ) -> None:
        self._proxy = proxy
        self._ends = (client, upstream)
        self._index = index
        self._draws = draws
        self._lock = threading.Lock()
        self._chunks = 0
        self._stall_until: float | None = None
        self._done = False

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._done:
                data = source.recv(_CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)  # pass the half-close on
                    return
                if not self._strike():
                    return
                self._proxy.carry(source is self._ends[0], len(data))  # before: the peer may read it at once
                sink.sendall(data)
        except OSError:
            self._abort()

    def _strike(self) -> bool:
        """Draw this chunk's fault before forwarding it; return False once the connection was reset."""
        proxy = self._proxy
        faults = proxy.faults
        with self._lock:
            chunk = self._chunks
            self._chunks += 1
            # Always draw both numbers, so that the n-th chunk gets the same ones whatever the faults.
            roll, seconds = self._draws.random(), self._draws.uniform(*faults.stall_seconds)
            now = time.monotonic()
            if faults.reset <= roll < faults.reset + faults.stall:
                self._stall_until = max(self._stall_until or now, now + seconds)
                proxy.note(Strike(self._index, chunk, Fault.STALL, seconds))
            until = self._stall_until
        if roll < faults.reset:
            proxy.note(Strike(self._index, chunk, Fault.RESET))
            self._abort()
            return False
        if until is not None and until > time.monotonic():
            # Both directions hold here until the stall is over, or the proxy heals or closes.
            proxy.hold(until - time.monotonic())
        return not proxy.closed

    def _abort(self) -> None:
        self._done = True
        for end in self._ends:
            _reset(end)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # sends nothing, but wakes a pump blocked reading it
    with contextlib.suppress(OSError):
        sock.close()  # with SO_LINGER 0: a reset


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
