"""Core semantics on the memory backend: the rules live in the core, so they hold for every backend."""

from __future__ import annotations

import pytest

import polyvisor
from polyvisor import (
    AlreadyExistsError,
    Connection,
    ConnectionError,
    Feature,
    InvalidStateError,
    Plugins,
    PowerState,
    UnsupportedError,
    ValidationError,
)
from polyvisor.backend import Credentials
from polyvisor.testing.faults import calls
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


def test_verbs_follow_the_table(mem: Connection) -> None:
    conn = mem
    vm = conn.create({"name": "a"})
    assert vm.state() is PowerState.STOPPED
    assert vm.start().state is PowerState.RUNNING
    assert calls(mem).count("start") == 1
    vm.start()  # idempotent: no backend call
    assert calls(mem).count("start") == 1
    vm.pause()
    with pytest.raises(InvalidStateError) as caught:
        vm.start()
    assert caught.value.state is PowerState.PAUSED
    assert "resume" in str(caught.value)
    vm.save()
    with pytest.raises(InvalidStateError, match="discard_saved_state"):
        vm.stop()
    with pytest.raises(InvalidStateError, match="force=True"):
        vm.delete()
    vm.delete(force=True)
    assert not conn.exists("a")
    vm.delete()  # gone already


def test_unsupported_feature_is_named(narrow: Connection) -> None:
    conn = narrow
    vm = conn.create({"name": "b"})
    vm.start()
    with pytest.raises(UnsupportedError) as caught:
        vm.reboot()
    assert caught.value.feature is Feature.REBOOT
    assert "Feature.REBOOT" in str(caught.value)
    with pytest.raises(UnsupportedError):
        vm.snapshot("s")
    with pytest.raises(UnsupportedError):
        conn.create({"name": "k", "kernel": {"kernel": "/vmlinuz"}})
    assert not conn.exists("k")


def test_duplicate_names_and_validation(mem: Connection) -> None:
    conn = mem
    conn.create({"name": "dup"})
    with pytest.raises(AlreadyExistsError):
        conn.create({"name": "dup"})
    with pytest.raises(ValidationError):
        conn.create({"name": "x", "cpus": -1})
    assert [v.name for v in conn.list()] == ["dup"]
    assert calls(mem).count("create") == 1, "refused creations never reach the backend"


def test_ensure_plans(mem: Connection) -> None:
    conn = mem
    vm = conn.create({"name": "e"})
    steps: list[str] = []
    vm.ensure("saved", progress=steps.append)
    assert [s.split()[0] for s in steps] == ["start", "save"]
    steps.clear()
    vm.ensure("stopped", progress=steps.append)
    assert [s.split()[0] for s in steps] == ["start", "shutdown"]
    vm.ensure("paused")
    steps.clear()
    vm.ensure("stopped", force=True, progress=steps.append)
    assert [s.split()[0] for s in steps] == ["stop"]


def test_labels_validation_happens_before_the_backend(mem: Connection) -> None:
    vm = mem.create({"name": "l", "labels": {"a": "1"}})
    with pytest.raises(ValidationError):
        vm.set_labels({"bad key": "x"})
    assert "set_labels" not in calls(mem)
    assert dict(vm.labels()) == {"a": "1"}
    assert dict(vm.update_labels({"b": "2"}, remove=["a"])) == {"b": "2"}


def test_closed_connection(plugins: Plugins, host_name: str) -> None:
    conn = polyvisor.connect(f"memory:///{host_name}", plugins=plugins)
    conn.close()
    with pytest.raises(ConnectionError, match="closed"):
        conn.list()
    assert "closed" in repr(conn)


class Keeping(MemoryBackend):
    """``memory://`` that keeps the credentials it was given (options and all)."""

    credentials: Credentials

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, Credentials(username=credentials.username, password=credentials.password))
        self.credentials = credentials


def test_credentials_are_wrapped_and_hidden(plugins: Plugins) -> None:
    plugins.registry.add("keeping", Keeping)
    conn = polyvisor.connect("keeping://admin:urisecret@host/", plugins=plugins, password="kwsecret", ca_path="/x")
    assert isinstance(conn.backend, Keeping)
    creds = conn.backend.credentials
    assert creds.password is not None
    assert creds.username == "admin"
    assert creds.password.reveal() == "kwsecret"
    assert creds.options == {"ca_path": "/x"}
    for text in (repr(conn), repr(creds), str(creds.password), repr(conn.uri)):
        assert "secret" not in text


def test_a_backend_failing_at_connect_is_closed(plugins: Plugins) -> None:
    closed: list[bool] = []

    class Broken(MemoryBackend):
        def probe_features(self) -> frozenset[Feature]:
            raise polyvisor.BackendError("cannot describe myself")

        def close(self) -> None:
            closed.append(True)

    plugins.registry.add("broken", Broken)
    with pytest.raises(polyvisor.BackendError):
        polyvisor.connect("broken:///", plugins=plugins)
    assert closed == [True]


def test_a_probe_narrows_the_connection(narrow: Connection) -> None:
    assert narrow.capabilities.features == {Feature.CREATE, Feature.PAUSE, Feature.SAVE, Feature.RESET, Feature.LABELS}
    assert not narrow.supports(Feature.EVENTS)


def test_a_memory_host_is_ephemeral(mem: Connection) -> None:
    # Another process connecting to the same URI sees a host of its own: what this one did is gone with it.
    assert mem.ephemeral is True
    mem.close()
    assert mem.ephemeral is True  # a fact about the connection, still known once it is closed
