"""Core semantics on the toy backend: the rules live in the core, so they hold for every backend."""

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


def test_verbs_follow_the_table(toy: Connection) -> None:
    vm = toy.create({"name": "a"})
    assert vm.state is PowerState.STOPPED
    assert vm.start().state is PowerState.RUNNING
    calls = toy.backend.calls  # type: ignore[attr-defined]
    before = len([c for c in calls if c == "running"])
    vm.start()  # idempotent: no backend call
    assert len([c for c in calls if c == "running"]) == before
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
    assert not toy.exists("a")
    vm.delete()  # gone already


def test_unsupported_feature_is_named(toy: Connection) -> None:
    vm = toy.create({"name": "b"})
    vm.start()
    with pytest.raises(UnsupportedError) as caught:
        vm.reboot()
    assert caught.value.feature is Feature.REBOOT
    assert "Feature.REBOOT" in str(caught.value)
    with pytest.raises(UnsupportedError):
        vm.snapshot("s")
    with pytest.raises(UnsupportedError):
        toy.create({"name": "k", "kernel": {"kernel": "/vmlinuz"}})
    assert not toy.exists("k")


def test_duplicate_names_and_validation(toy: Connection) -> None:
    toy.create({"name": "dup"})
    with pytest.raises(AlreadyExistsError):
        toy.create({"name": "dup"})
    with pytest.raises(ValidationError):
        toy.create({"name": "x", "cpus": -1})
    assert [v.name for v in toy.vms()] == ["dup"]


def test_ensure_plans(toy: Connection) -> None:
    vm = toy.create({"name": "e"})
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


def test_labels_validation_happens_before_the_backend(toy: Connection) -> None:
    vm = toy.create({"name": "l", "labels": {"a": "1"}})
    with pytest.raises(ValidationError):
        vm.set_labels({"bad key": "x"})
    assert dict(vm.labels) == {"a": "1"}
    assert dict(vm.update_labels({"b": "2"}, remove=["a"])) == {"b": "2"}


def test_closed_connection(toy_plugins: Plugins) -> None:
    conn = polyvisor.connect("toy:///", plugins=toy_plugins)
    conn.close()
    with pytest.raises(ConnectionError, match="closed"):
        conn.vms()
    assert "closed" in repr(conn)


def test_credentials_are_wrapped_and_hidden(toy_plugins: Plugins) -> None:
    conn = polyvisor.connect("toy://admin:urisecret@host/", plugins=toy_plugins, password="kwsecret", ca_path="/x")
    creds = conn.backend.credentials  # type: ignore[attr-defined]
    assert creds.username == "admin"
    assert creds.password.reveal() == "kwsecret"
    assert creds.options == {"ca_path": "/x"}
    for text in (repr(conn), repr(creds), str(creds.password), repr(conn.uri)):
        assert "secret" not in text


def test_a_backend_failing_at_connect_is_closed(toy_plugins: Plugins) -> None:
    from toy_backend import ToyBackend

    closed: list[bool] = []

    class Broken(ToyBackend):
        def capabilities(self) -> polyvisor.Capabilities:
            raise polyvisor.BackendError("cannot describe myself")

        def close(self) -> None:
            closed.append(True)

    toy_plugins.registry.add("broken", lambda uri, creds: Broken(uri, creds))
    with pytest.raises(polyvisor.BackendError):
        polyvisor.connect("broken:///", plugins=toy_plugins)
    assert closed == [True]
