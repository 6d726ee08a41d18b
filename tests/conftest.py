"""Shared fixtures of the core's tests: the core's own ``memory://`` backend, one fresh host per test.

``memory://`` hosts are shared per name within the process, so every test gets a host of its own
(``memory:///test-<hex>``) and never sees another test's VMs. Every ``memory://`` connection records the primitives
it was asked for (:func:`polyvisor.testing.faults.calls`), and the URI's query makes the host misbehave
(:mod:`polyvisor.testing.faults`).
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import polyvisor
from polyvisor import Connection, Plugins
from polyvisor.testing.memory_plugin import isolated_plugins

NARROW = "features=create,pause,save,reset,labels"
"""The query of a small backend's host: no events (so the core polls), no snapshots, no reboot."""


@pytest.fixture(scope="session")
def noxfile() -> ModuleType:
    """The repository's noxfile as a module, imported once per run: nox registers its sessions as it is imported,
    and a second import warns."""
    spec = importlib.util.spec_from_file_location("polyvisor_noxfile", Path(__file__).parent.parent / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plugins() -> Plugins:
    return isolated_plugins()


@pytest.fixture
def host_name() -> str:
    """A memory host name no other test uses."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def mem(plugins: Plugins, host_name: str) -> Iterator[Connection]:
    """A connection to a fresh in-memory host (``calls(conn)`` lists the primitives called)."""
    with polyvisor.connect(f"memory:///{host_name}", plugins=plugins) as conn:
        yield conn


@pytest.fixture
def narrow(plugins: Plugins, host_name: str) -> Iterator[Connection]:
    """A connection to a fresh in-memory host whose probe narrows it to the features of :data:`NARROW`."""
    with polyvisor.connect(f"memory:///{host_name}?{NARROW}", plugins=plugins) as conn:
        yield conn
