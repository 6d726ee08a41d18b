"""Capabilities are derived from the backend class, checked when the class is made, and only narrowed by probes."""

from __future__ import annotations

import pytest

from polyvisor import Connection, Feature, Snapshot
from polyvisor.backend import METHOD_FEATURES, OPTION_FEATURES, Backend, Credentials, Deadline
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


def test_pause_without_resume_is_refused_naming_both() -> None:
    with pytest.raises(TypeError) as caught:

        class OnlyPause(Backend):
            def pause(self, uuid: str, deadline: Deadline) -> None:
                pass

    message = str(caught.value)
    assert "OnlyPause" in message
    assert "pause" in message
    assert "resume" in message
    assert "missing" in message


def test_a_method_feature_listed_as_an_option_is_refused() -> None:
    with pytest.raises(TypeError, match="'events' is declared by overriding subscribe"):

        class EventsByDeclaration(MemoryBackend):
            option_features = MemoryBackend.option_features | {Feature.EVENTS}


def test_an_option_feature_without_its_base_is_refused() -> None:
    with pytest.raises(TypeError, match="'snapshot-memory' builds on 'snapshots', which is not implemented"):

        class MemorySnapshotsOnly(Backend):
            option_features = frozenset({Feature.SNAPSHOT_MEMORY})


def test_an_option_feature_whose_base_is_implemented_is_accepted() -> None:
    class WithSnapshots(Backend):
        option_features = frozenset({Feature.SNAPSHOT_MEMORY})

        def snapshot_create(
            self, uuid: str, name: str, *, memory: bool, description: str, deadline: Deadline
        ) -> Snapshot:
            raise NotImplementedError

        def snapshot_list(self, uuid: str) -> list[Snapshot]:
            raise NotImplementedError

        def snapshot_revert(self, uuid: str, name: str, deadline: Deadline) -> None:
            raise NotImplementedError

        def snapshot_delete(self, uuid: str, name: str, *, children: bool, deadline: Deadline) -> None:
            raise NotImplementedError

    assert WithSnapshots.static_features() == {Feature.SNAPSHOTS, Feature.SNAPSHOT_MEMORY}, "create is abstract here"


def test_memory_backend_declares_exactly_what_it_implements() -> None:
    declared = set(METHOD_FEATURES) | set(MemoryBackend.option_features) | {Feature.CREATE}
    # memory:// does not implement these method features:
    declared -= {Feature.CONSOLE}
    assert MemoryBackend.static_features() == declared
    for feature in MemoryBackend.static_features():
        assert feature in METHOD_FEATURES or feature in OPTION_FEATURES


class Probing(MemoryBackend):
    """A memory host whose probe answers what the test sets."""

    probed: frozenset[Feature] | None = None

    def probe_features(self) -> frozenset[Feature] | None:
        return self.probed


def _connect(probed: frozenset[Feature] | None, host_name: str) -> Connection:
    uri = URI.parse(f"memory:///{host_name}")
    backend = Probing(uri, Credentials())
    backend.probed = probed
    return Connection(backend, uri)


def test_a_probe_narrows(host_name: str) -> None:
    with _connect(frozenset({Feature.CREATE, Feature.PAUSE}), host_name) as conn:
        assert conn.capabilities.features == {Feature.CREATE, Feature.PAUSE}


def test_a_probe_cannot_add_a_feature(host_name: str) -> None:
    extra = {Feature.CONSOLE, Feature.UEFI, Feature.SHUTDOWN_AGENT}
    assert not extra & MemoryBackend.static_features()
    with _connect(MemoryBackend.static_features() | extra, host_name) as conn:
        assert conn.capabilities.features == MemoryBackend.static_features()
        assert not conn.supports(Feature.CONSOLE)


def test_no_probe_keeps_the_static_set(host_name: str) -> None:
    with _connect(None, host_name) as conn:
        assert conn.capabilities.features == MemoryBackend.static_features()


def test_a_vm_probe_only_narrows(host_name: str) -> None:
    class VMProbing(MemoryBackend):
        def probe_vm_features(self, uuid: str) -> frozenset[Feature]:
            return frozenset({Feature.CREATE, Feature.LABELS, Feature.CONSOLE})

    uri = URI.parse(f"memory:///{host_name}")
    with Connection(VMProbing(uri, Credentials()), uri) as conn:
        vm = conn.create({"name": "probed"})
        assert vm.capabilities().features == {Feature.CREATE, Feature.LABELS}
        assert conn.supports(Feature.PAUSE)
