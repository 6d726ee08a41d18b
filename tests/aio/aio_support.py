"""What the asyncio tests share besides fixtures: the backends to run on, and skipping or failing by CI."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest


def require(component: str, error: BaseException | str) -> None:
    """Skip for a missing component; fail under ``CI=true``, where every component must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{component} is required under CI=true: {error}")
    pytest.skip(f"{component} is not available: {error}")


@dataclass(frozen=True)
class Target:
    """One backend to run a scenario on: its URI and connection options."""

    name: str
    uri: str
    options: dict[str, Any] = field(default_factory=dict)

    def vm_name(self) -> str:
        """A VM name no other test uses (libvirt's test:///default is shared by the whole process)."""
        return f"aio-{uuid.uuid4().hex[:10]}"


class HangingListener:
    """A TCP listener that accepts connections and never answers: a host hung mid-request."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="aio-hanging-host", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            self._accepted.append(client)

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._server.close()
        for client in list(self._accepted):
            client.close()  # abandoned client threads see the connection drop and end
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
