"""Core semantics at the edges: races with other actors, closing streams, hostile values, bad arguments."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from polyvisor import (
    BackendError,
    Connection,
    DiskSpec,
    Event,
    InvalidStateError,
    PowerState,
    ValidationError,
    VMSpec,
    VMStatus,
)
from polyvisor.backend import Credentials, Deadline
from polyvisor.testing import eventually
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI


class RacingBackend(MemoryBackend):
    """A memory host whose verbs find that another actor already did the job, as a real hypervisor reports it."""

    def start(self, uuid: str, deadline: Deadline) -> None:
        super().start(uuid, deadline)  # another client started it between the core's check and this call
        raise BackendError("domain is already running", code="VIR_ERR_OPERATION_INVALID")

    def stop(self, uuid: str, deadline: Deadline) -> None:
        super().stop(uuid, deadline)
        raise InvalidStateError("domain is not running", state=PowerState.STOPPED)

    def pause(self, uuid: str, deadline: Deadline) -> None:
        raise InvalidStateError("the hypervisor refused", state=PowerState.RUNNING)

    def resume(self, uuid: str, deadline: Deadline) -> None:
        super().resume(uuid, deadline)


@pytest.fixture
def racing(host_name: str) -> Iterator[Connection]:
    uri = URI.parse(f"memory:///{host_name}")
    with Connection(RacingBackend(uri, Credentials()), uri) as conn:
        yield conn


class CrashingBackend(MemoryBackend):
    """A memory host whose guests can crash (memory:// itself has no crashed guests)."""

    crashed: set[str]

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.crashed = set()

    def status(self, uuid: str) -> VMStatus:
        if uuid in self.crashed:
            return VMStatus(PowerState.CRASHED, "crashed")
        return super().status(uuid)

    def stop(self, uuid: str, deadline: Deadline) -> None:
        self.crashed.discard(uuid)
        super().stop(uuid, deadline)


def test_a_verb_whose_target_another_actor_reached_succeeds(racing: Connection) -> None:
    vm = racing.create({"name": "raced"})
    assert vm.start().state is PowerState.RUNNING
    assert vm.stop().state is PowerState.STOPPED


def test_a_refused_verb_still_raises_when_the_target_was_not_reached(racing: Connection) -> None:
    vm = racing.create({"name": "refused"})
    vm.start()
    with pytest.raises(InvalidStateError, match="refused"):
        vm.pause()
    assert vm.state() is PowerState.RUNNING


def _poll_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "polyvisor-poll")


@pytest.mark.parametrize("source", ["native", "polled"])
def test_closing_a_stream_ends_an_iteration_blocked_in_another_thread(
    source: str, mem: Connection, narrow: Connection
) -> None:
    conn = mem if source == "native" else narrow
    stream = conn.watch()
    seen: list[Event] = []
    finished = threading.Event()

    def consume() -> None:
        seen.extend(stream)
        finished.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    conn.create({"name": "ev"})
    eventually(lambda: bool(seen), timeout=5, what="the event the iterating thread saw")
    stream.close()
    assert finished.wait(5), "the iterating thread stayed blocked after close()"
    assert [event.name for event in seen] == ["ev"]


def test_closing_the_connection_closes_its_streams(narrow: Connection) -> None:
    conn = narrow
    before = _poll_threads()
    stream = conn.watch()
    assert _poll_threads() == before + 1
    conn.close()
    eventually(lambda: _poll_threads() == before, timeout=5, what="the polling thread to end with its connection")
    assert list(stream) == []
    assert stream.get(timeout=0) is None


@pytest.mark.parametrize("bad", ["\ufffe", "\uffff", "\ud800"])
def test_paths_refuse_characters_xml_cannot_carry(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"disk\.image"):
        DiskSpec(image=f"/images/a{bad}.qcow2")
    with pytest.raises(ValidationError, match="cdrom"):
        VMSpec(name="x", cdrom=f"/isos/a{bad}.iso")
    with pytest.raises(ValidationError, match="kernel"):
        VMSpec(name="x", kernel={"kernel": f"/boot/vmlinuz{bad}"})  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [-1, "soon", True])
def test_ensure_refuses_a_bad_timeout_before_acting(mem: Connection, timeout: object) -> None:
    conn = mem
    vm = conn.create({"name": "t"})
    with pytest.raises(ValidationError, match="timeout"):
        vm.ensure("running", timeout=timeout)  # type: ignore[arg-type]
    assert vm.state() is PowerState.STOPPED


def test_update_labels_takes_one_key_to_remove_as_a_string(mem: Connection) -> None:
    conn = mem
    vm = conn.create({"name": "l", "labels": {"env": "prod", "e": "1", "n": "2"}})
    assert dict(vm.update_labels(remove="env")) == {"e": "1", "n": "2"}


def test_an_unknown_state_name_is_a_validation_error(mem: Connection) -> None:
    conn = mem
    vm = conn.create({"name": "s"})
    with pytest.raises(ValidationError, match="runing"):
        vm.wait_for("runing", timeout=0)
    with pytest.raises(ValidationError, match="runing"):
        vm.ensure("runing")


def test_ensure_suggests_force_only_where_force_helps(host_name: str) -> None:
    uri = URI.parse(f"memory:///{host_name}")
    backend = CrashingBackend(uri, Credentials())
    with Connection(backend, uri) as conn:
        vm = conn.create({"name": "f"})
        vm.start()
        backend.crashed.add(vm.uuid)
        with pytest.raises(InvalidStateError, match="force=True"):
            vm.ensure("stopped")
        with pytest.raises(InvalidStateError) as caught:
            vm.ensure("paused")
        assert "force" not in str(caught.value)
        assert vm.ensure("stopped", force=True, timeout=5).state is PowerState.STOPPED
