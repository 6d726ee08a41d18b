"""Shared fixtures of the core's tests: the core's own ``memory://`` backend, one fresh host per test.

``memory://`` hosts are shared per name within the process, so every test gets a host of its own
(``memory:///test-<hex>``) and never sees another test's VMs. Where a test needs to see what the core asked of
the backend, :class:`core_backends.RecordingBackend` (driver ``recmem``) records every primitive call.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from core_backends import memory_plugins

import polyvisor
from polyvisor import Connection, Plugins


@pytest.fixture
def plugins() -> Plugins:
    return memory_plugins()


@pytest.fixture
def host_name() -> str:
    """A memory host name no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def mem(plugins: Plugins, host_name: str) -> Iterator[Connection]:
    """A recording connection to a fresh in-memory host (``conn.backend.calls`` lists the primitives called)."""
    with polyvisor.connect(f"recmem:///{host_name}", plugins=plugins) as conn:
        yield conn


@pytest.fixture
def narrow(plugins: Plugins, host_name: str) -> Iterator[Connection]:
    """A connection to a fresh in-memory host narrowed to :data:`NARROW_FEATURES` (no native events)."""
    with polyvisor.connect(f"narrow:///{host_name}", plugins=plugins) as conn:
        yield conn
