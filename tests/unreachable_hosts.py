"""Hosts that fail the way real ones do, for the fleet tests (sync and asyncio): one that is down (a port no one
listens on) and one that hangs (a listener that accepts and never answers)."""

from __future__ import annotations

import socket
import threading

__all__ = ["HangingListener", "closed_port"]


class HangingListener:
    """A TCP listener that accepts connections and never answers: a host hung mid-request."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="hanging-host", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._accepted.append(client)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._server.close()
        with self._lock:
            for client in self._accepted:
                client.close()  # abandoned client threads see the connection drop and end
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
