"""One lazily opened, reused :class:`~polyvisor.Connection` per host of a fleet.

Reusing the connection keeps what makes the second call cheap: libvirt's open connection, a Hyper-V PSRP
runspace pool. A connection that reported :class:`~polyvisor.errors.ConnectionLostError`, or whose call was
abandoned at its timeout, is dropped and retired in the background (closed, or once the event streams a caller
opened on it are closed: they reconnect by themselves); the next call opens a fresh one. While an
open is in flight (perhaps stuck on a host that never answers), later calls wait for it rather than start another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from polyvisor.connection import Connection
from polyvisor.errors import ConnectionError, PolyvisorError, TimeoutError

__all__ = ["ConnectionPool"]

log = logging.getLogger("polyvisor.fleet")

Opener = Callable[[str], Connection]


@dataclass
class _Slot:
    connection: Connection | None = None
    opening: threading.Event | None = None
    failure: PolyvisorError | None = None  # the last open's error, for those that waited on it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def outcome(self) -> tuple[Connection | None, PolyvisorError | None]:
        """The pooled connection and the last open's error, read together."""
        with self.lock:
            return self.connection, self.failure


def _close_quietly(connection: Connection) -> None:
    try:
        connection.close()
    except Exception as error:  # a failed goodbye changes nothing for the fleet
        log.debug("closing %s failed: %s", connection.host, error)


def _retire_quietly(connection: Connection) -> None:
    try:
        connection.retire()
    except Exception as error:  # a failed goodbye changes nothing for the fleet
        log.debug("closing %s failed: %s", connection.host, error)


class ConnectionPool:
    """Connections by host name, opened by ``opener(host)`` on first use."""

    def __init__(self, hosts: list[str], opener: Opener) -> None:
        self._opener = opener
        self._slots = {host: _Slot() for host in hosts}
        # Dropped, but perhaps still watched through: closed with the pool.
        self._retired: list[tuple[str, Connection]] = []
        self._retired_lock = threading.Lock()
        self._closed = False

    def get(self, host: str, deadline: float) -> Connection:
        """Return the host's connection, opening it if need be; wait for an open in flight until ``deadline``."""
        slot = self._slots[host]
        with slot.lock:
            if self._closed:
                raise ConnectionError("the fleet is closed; make a new one", host=host)
            if slot.connection is not None:
                return slot.connection
            opening = slot.opening
            if opening is None:
                opening = slot.opening = threading.Event()
                mine = True
            else:
                mine = False
        if mine:
            return self._open(host, slot, opening)
        if not opening.wait(max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError("still connecting (an earlier call's open has not finished)", host=host)
        connection, failure = slot.outcome()
        if connection is not None:
            return connection
        if failure is not None:
            raise failure
        return self.get(host, deadline)  # dropped again meanwhile: open afresh

    def _open(self, host: str, slot: _Slot, opening: threading.Event) -> Connection:
        connection: Connection | None = None
        try:
            connection = self._opener(host)
        except PolyvisorError as error:
            with slot.lock:
                slot.failure = error
                slot.opening = None
            raise
        except BaseException:
            with slot.lock:
                slot.opening = None
            raise
        finally:
            opening.set()
        with slot.lock:
            slot.opening = None
            slot.failure = None
            if self._closed:  # an open that outlived close(): nobody will use it
                closed = True
            else:
                closed = False
                slot.connection = connection
        if closed:
            _close_quietly(connection)
            raise ConnectionError("the fleet was closed while connecting", host=host)
        return connection

    def drop(self, host: str, connection: Connection | None = None) -> None:
        """Stop reusing the host's connection (``connection``, if given, must be the pooled one); close it aside."""
        slot = self._slots[host]
        with slot.lock:
            current = slot.connection
            if current is None or (connection is not None and connection is not current):
                return
            slot.connection = None
        with self._retired_lock:
            self._retired = [(name, conn) for name, conn in self._retired if not conn.closed] + [(host, current)]
        log.info("dropping the connection to %s; the next call opens a new one", host)
        threading.Thread(target=_retire_quietly, args=(current,), name=f"polyvisor-close-{host}", daemon=True).start()

    def close(self, timeout: float) -> None:
        """Close every connection, waiting at most ``timeout`` seconds in all; a close still running is abandoned."""
        self._closed = True  # an open finishing from now on closes its own connection
        connections = []
        for host, slot in self._slots.items():
            with slot.lock:
                if slot.connection is not None:
                    connections.append((host, slot.connection))
                slot.connection = None
        with self._retired_lock:
            connections.extend((host, conn) for host, conn in self._retired if not conn.closed)
            self._retired = []
        threads = [
            threading.Thread(target=_close_quietly, args=(conn,), name=f"polyvisor-close-{host}", daemon=True)
            for host, conn in connections
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for (host, _), thread in zip(connections, threads, strict=True):
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                log.info("closing the connection to %s takes longer than %g s; leaving it", host, timeout)
