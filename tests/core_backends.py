"""Backends the core's tests build on: ``memory://`` subclasses that record calls or narrow their features.

``recmem:///NAME`` and ``narrow:///NAME`` serve the same in-memory hosts as ``memory:///NAME``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from polyvisor import Connection, Feature, Plugins
from polyvisor.backend import Credentials
from polyvisor.hookspecs import hookimpl
from polyvisor.plugins import BackendRegistry
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI

#: Primitives whose calls :class:`RecordingBackend` records (by name, in call order).
RECORDED = (
    "host_info",
    "list_vms",
    "lookup",
    "info",
    "status",
    "create",
    "start",
    "shutdown",
    "stop",
    "reset",
    "reboot",
    "pause",
    "resume",
    "save",
    "discard_saved_state",
    "delete",
    "set_labels",
    "snapshot_create",
    "snapshot_list",
    "snapshot_revert",
    "snapshot_delete",
    "subscribe",
    "addresses",
    "address_answers",
    "reconfigure",
    "resize_disk",
)

#: Calls that change something on the hypervisor (everything else in RECORDED only reads).
MUTATING = frozenset(RECORDED) - {
    "host_info",
    "list_vms",
    "lookup",
    "info",
    "status",
    "snapshot_list",
    "subscribe",
    "addresses",
    "address_answers",
}


class RecordingBackend(MemoryBackend):
    """``memory://`` that records every primitive call and keeps the credentials it was given."""

    name = "recording memory"
    calls: list[str]
    credentials: Credentials

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, Credentials(username=credentials.username, password=credentials.password))
        self.credentials = credentials
        self.calls = []

    def mutations(self) -> list[str]:
        """The recorded calls that change something."""
        return [call for call in self.calls if call in MUTATING]


def _recording(name: str) -> Callable[..., Any]:
    original = getattr(MemoryBackend, name)

    @functools.wraps(original)
    def method(self: RecordingBackend, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(name)
        return original(self, *args, **kwargs)

    return method


for _name in RECORDED:
    setattr(RecordingBackend, _name, _recording(_name))

#: The features of the old toy backend: what a small backend without events or snapshots declares.
NARROW_FEATURES = frozenset({Feature.CREATE, Feature.PAUSE, Feature.SAVE, Feature.RESET, Feature.LABELS})


class NarrowBackend(RecordingBackend):
    """A recording ``memory://`` whose host probe narrows it to :data:`NARROW_FEATURES` (so events are polled)."""

    name = "narrow memory"

    def probe_features(self) -> frozenset[Feature]:
        return NARROW_FEATURES


class MemoryPlugins:
    """Registers ``memory``, ``recmem`` and ``narrow`` for tests, without entry points."""

    @hookimpl
    def polyvisor_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("memory", MemoryBackend, description="in-memory hypervisor")
        registry.add("recmem", RecordingBackend, description="recording in-memory hypervisor")
        registry.add("narrow", NarrowBackend, description="in-memory hypervisor with few features")


def memory_plugins() -> Plugins:
    """Plugins that know ``memory``, ``recmem`` and ``narrow`` only (no entry points)."""
    plugins = Plugins(load_entry_points=False)
    plugins.register(MemoryPlugins(), name="memory-tests")
    return plugins


def calls(conn: Connection) -> list[str]:
    """The primitives a recording connection's backend was asked for so far."""
    backend = conn.backend
    assert isinstance(backend, RecordingBackend)
    return backend.calls
