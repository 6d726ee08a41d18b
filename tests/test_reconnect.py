"""A dropped connection: reads are retried once, changes say their outcome is unknown, the next call works."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from polyvisor import Connection, PowerState
from polyvisor.backend import Credentials, Deadline
from polyvisor.errors import ConnectionLostError
from polyvisor.model import VMInfo, VMStatus
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


class Dropping(MemoryBackend):
    """Each name in ``drop`` raises ConnectionLostError once, before acting, then works (calls are recorded, as on
    every ``memory://``)."""

    drop: set[str]
    always: set[str]
    """Names that drop every time."""

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.drop = set()
        self.always = set()

    def _maybe_drop(self, name: str) -> None:
        if name in self.always:
            raise ConnectionLostError(f"link down during {name}")
        if name in self.drop:
            self.drop.discard(name)
            raise ConnectionLostError(f"link dropped during {name}")

    def list_vms(self) -> list[VMInfo]:
        result = super().list_vms()  # recorded
        self._maybe_drop("list_vms")
        return result

    def lookup(self, ref: str) -> VMInfo:
        self._maybe_drop("lookup")
        return super().lookup(ref)

    def status(self, uuid: str) -> VMStatus:
        self._maybe_drop("status")
        return super().status(uuid)

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._maybe_drop("start")
        super().start(uuid, deadline)

    def set_labels(self, uuid: str, labels: Mapping[str, str]) -> None:
        self._maybe_drop("set_labels")
        super().set_labels(uuid, labels)


@pytest.fixture
def dropping(host_name: str) -> Iterator[tuple[Connection, Dropping]]:
    uri = URI.parse(f"memory:///{host_name}")
    backend = Dropping(uri, Credentials())
    with Connection(backend, uri) as conn:
        yield conn, backend


def test_a_read_is_retried_once_transparently(dropping: tuple[Connection, Dropping]) -> None:
    conn, backend = dropping
    conn.create({"name": "a"})
    backend.calls.clear()
    backend.drop = {"list_vms"}
    assert [info.name for info in conn.list()] == ["a"]
    assert backend.calls.count("list_vms") == 2
    backend.drop = {"lookup"}
    assert conn.vm("a").seen_name == "a"
    backend.drop = {"status"}
    assert conn.vm("a").state() is PowerState.STOPPED


def test_a_read_that_drops_twice_raises(dropping: tuple[Connection, Dropping]) -> None:
    conn, backend = dropping
    backend.always = {"list_vms"}
    with pytest.raises(ConnectionLostError):
        conn.list()
    assert backend.calls.count("list_vms") == 2, "a read is retried once, not forever"


def test_a_dropped_verb_has_an_unknown_outcome_and_is_not_repeated(dropping: tuple[Connection, Dropping]) -> None:
    conn, backend = dropping
    vm = conn.create({"name": "v"})
    backend.drop = {"start"}
    with pytest.raises(ConnectionLostError) as caught:
        vm.start(timeout=5)
    assert caught.value.outcome_unknown is True
    assert "unknown" in str(caught.value)
    assert "starting" in str(caught.value) or "start" in str(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionLostError)
    assert backend.calls.count("start") == 1, "a change is never retried behind the caller's back"
    assert vm.state() is PowerState.STOPPED
    assert vm.start(timeout=5).state is PowerState.RUNNING, "the next call works"
    assert backend.calls.count("start") == 2


def test_a_dropped_label_update_has_an_unknown_outcome(dropping: tuple[Connection, Dropping]) -> None:
    conn, backend = dropping
    vm = conn.create({"name": "l", "labels": {"a": "1"}})
    backend.drop = {"set_labels"}
    with pytest.raises(ConnectionLostError) as caught:
        vm.update_labels({"b": "2"})
    assert caught.value.outcome_unknown is True
    assert "unknown" in str(caught.value)
    assert dict(vm.update_labels({"b": "2"})) == {"a": "1", "b": "2"}


def test_a_read_error_is_not_marked_as_an_unknown_outcome(dropping: tuple[Connection, Dropping]) -> None:
    conn, backend = dropping
    backend.always = {"lookup"}
    with pytest.raises(ConnectionLostError) as caught:
        conn.vm("nothing")
    assert caught.value.outcome_unknown is False
