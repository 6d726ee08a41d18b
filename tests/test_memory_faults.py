"""The faults of ``memory://`` (:mod:`polyvisor.testing.faults`): each query option misbehaves as documented."""

from __future__ import annotations

import logging

import pytest

import polyvisor
from polyvisor import Connection, Feature, Plugins, PowerState
from polyvisor.backend import Credentials
from polyvisor.errors import AuthenticationError, BackendError, ConnectionError, ValidationError
from polyvisor.testing.faults import PRIMITIVES, calls, password_digest
from polyvisor.testing.memory import MemoryBackend, host_named
from polyvisor.uri import URI


def test_without_a_query_the_host_keeps_the_whole_contract(mem: Connection) -> None:
    assert mem.capabilities.features == MemoryBackend.static_features()


def test_unknown_options_and_values_are_refused_naming_the_known_ones(plugins: Plugins, host_name: str) -> None:
    with pytest.raises(ValidationError, match="no option 'bogus'; its options: fail, fail-message, features"):
        polyvisor.connect(f"memory:///{host_name}?bogus=1", plugins=plugins)
    with pytest.raises(ValidationError, match=r"without='telepathy' is not known; give one of: .*pause"):
        polyvisor.connect(f"memory:///{host_name}?without=telepathy", plugins=plugins)
    with pytest.raises(ValidationError, match=r"fail='fly' is not known; give one of: .*save"):
        polyvisor.connect(f"memory:///{host_name}?fail=fly", plugins=plugins)
    with pytest.raises(ValidationError, match="guest='sleepy' is not known; give one of: ignore-shutdown"):
        polyvisor.connect(f"memory:///{host_name}?guest=sleepy", plugins=plugins)
    with pytest.raises(ValidationError, match="unreachable='maybe' is not known; give one of: false, true"):
        polyvisor.connect(f"memory:///{host_name}?unreachable=maybe", plugins=plugins)


def test_features_and_without_narrow_the_probe(plugins: Plugins, host_name: str) -> None:
    with polyvisor.connect(f"memory:///{host_name}?features=create,pause,events", plugins=plugins) as conn:
        assert conn.capabilities.features == {Feature.CREATE, Feature.PAUSE, Feature.EVENTS}
    with polyvisor.connect(f"memory:///{host_name}?without=pause,events", plugins=plugins) as conn:
        assert conn.capabilities.features == MemoryBackend.static_features() - {Feature.PAUSE, Feature.EVENTS}
        assert not conn.supports(Feature.EVENTS)
        vm = conn.create({"name": "polled"})
        assert vm.start(timeout=5).state is PowerState.RUNNING  # settled by polling


def test_a_failing_primitive_raises_a_backend_error_and_changes_nothing(plugins: Plugins, host_name: str) -> None:
    with polyvisor.connect(f"memory:///{host_name}?fail=save,list_vms&fail-message=disk+full", plugins=plugins) as conn:
        vm = conn.create({"name": "a"})
        vm.start(timeout=5)
        with pytest.raises(BackendError) as caught:
            vm.save(timeout=5)
        assert str(caught.value).startswith("save failed: disk full")
        assert caught.value.native_message == "disk full"
        assert vm.state() is PowerState.RUNNING
        with pytest.raises(BackendError, match="list_vms failed: disk full"):
            conn.list()
    with polyvisor.connect(f"memory:///{host_name}?fail=pause", plugins=plugins) as conn:
        with pytest.raises(BackendError, match=r"^pause failed: injected failure"):
            conn.vm("a").pause(timeout=5)
        assert [info.name for info in conn.list()] == ["a"], "another connection to the host is not broken"


def test_guests_ignore_shutdown_on_that_connection(plugins: Plugins, host_name: str) -> None:
    with polyvisor.connect(f"memory:///{host_name}?guest=ignore-shutdown", plugins=plugins) as conn:
        vm = conn.create({"name": "stubborn"})
        vm.start(timeout=5)
        with pytest.raises(polyvisor.TimeoutError):
            vm.shutdown(timeout=0.05)
        assert vm.state() is PowerState.RUNNING
    with polyvisor.connect(f"memory:///{host_name}", plugins=plugins) as conn:
        assert conn.vm("stubborn").shutdown(timeout=5).state is PowerState.STOPPED


def test_an_unreachable_host(plugins: Plugins, host_name: str) -> None:
    with pytest.raises(ConnectionError, match=f"cannot reach {host_name}: connection refused"):
        polyvisor.connect(f"memory:///{host_name}?unreachable=true", plugins=plugins)


def test_a_host_that_checks_the_password(plugins: Plugins, host_name: str) -> None:
    uri = f"memory://admin@/{host_name}?password-sha256={password_digest('right')}"
    with polyvisor.connect(uri, plugins=plugins, password="right") as conn:
        assert conn.list() == []
    for given in ("wrong", None):
        with pytest.raises(AuthenticationError, match="refused the credentials of 'admin'; check the password") as no:
            polyvisor.connect(uri, plugins=plugins, password=given)
        assert "wrong" not in str(no.value)
    assert "right" not in uri, "the URI holds the digest alone"


def test_a_careless_host_leaks_the_password(plugins: Plugins, host_name: str, caplog: pytest.LogCaptureFixture) -> None:
    uri = f"memory://admin:hunter2@/{host_name}?password-sha256={password_digest('other')}&leak-secrets=true"
    with (
        caplog.at_level(logging.DEBUG, logger="polyvisor.testing.faults"),
        pytest.raises(AuthenticationError, match=r"\(password 'hunter2'\)"),
    ):
        polyvisor.connect(uri, plugins=plugins)
    assert "opening memory://admin:hunter2@/" in caplog.text
    assert "with hunter2" in caplog.text


def test_calls_are_recorded_once_through_the_overrides_of_a_subclass(host_name: str) -> None:
    class Counting(MemoryBackend):
        def start(self, uuid: str, deadline: polyvisor.backend.Deadline) -> None:
            super().start(uuid, deadline)

    uri = URI.parse(f"memory:///{host_name}")
    with Connection(Counting(uri, Credentials()), uri) as conn:
        vm = conn.create({"name": "a"})
        del calls(conn)[:]
        vm.start(timeout=5)
        assert calls(conn).count("start") == 1
        assert isinstance(conn.backend, Counting)
        assert conn.backend.mutations() == ["start"]


def test_every_primitive_is_a_backend_method() -> None:
    assert all(callable(getattr(MemoryBackend, name)) for name in PRIMITIVES)
    assert len(set(PRIMITIVES)) == len(PRIMITIVES)


def test_a_guest_crashes_until_stopped(mem: Connection, host_name: str) -> None:
    vm = mem.create({"name": "fragile"})
    vm.start(timeout=5)
    host_named(host_name).crash("fragile")
    assert vm.state() is PowerState.CRASHED
    assert vm.stop(timeout=5).state is PowerState.STOPPED
