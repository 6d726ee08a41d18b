"""Core semantics at the edges: races with other actors, closing streams, hostile values, bad arguments."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from toy_backend import ToyBackend

from polyvisor import (
    BackendError,
    Connection,
    DiskSpec,
    Event,
    InvalidStateError,
    PowerState,
    ValidationError,
    VMSpec,
)
from polyvisor.backend import Credentials
from polyvisor.uri import URI


class RacingToy(ToyBackend):
    """A toy whose verbs find that another actor already did the job, as a real hypervisor reports it."""

    def start(self, uuid: str) -> None:
        super().start(uuid)  # another client started it between the core's check and this call
        raise BackendError("domain is already running", code="VIR_ERR_OPERATION_INVALID")

    def stop(self, uuid: str) -> None:
        super().stop(uuid)
        raise InvalidStateError("domain is not running", state=PowerState.STOPPED)

    def pause(self, uuid: str) -> None:
        raise InvalidStateError("the hypervisor refused", state=PowerState.RUNNING)


@pytest.fixture
def racing() -> Iterator[Connection]:
    uri = URI.parse("toy:///")
    with Connection(RacingToy(uri, Credentials()), uri) as conn:
        yield conn


def test_a_verb_whose_target_another_actor_reached_succeeds(racing: Connection) -> None:
    vm = racing.create({"name": "raced"})
    assert vm.start().state is PowerState.RUNNING
    assert vm.stop().state is PowerState.STOPPED


def test_a_refused_verb_still_raises_when_the_target_was_not_reached(racing: Connection) -> None:
    vm = racing.create({"name": "refused"})
    vm.start()
    with pytest.raises(InvalidStateError, match="refused"):
        vm.pause()
    assert vm.state is PowerState.RUNNING


def _poll_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "polyvisor-poll")


def _until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_closing_a_stream_ends_an_iteration_blocked_in_another_thread(toy: Connection) -> None:
    stream = toy.watch()
    seen: list[Event] = []
    finished = threading.Event()

    def consume() -> None:
        seen.extend(stream)
        finished.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    toy.create({"name": "ev"})
    assert _until(lambda: bool(seen))
    stream.close()
    assert finished.wait(5), "the iterating thread stayed blocked after close()"
    assert [event.name for event in seen] == ["ev"]


def test_closing_the_connection_closes_its_streams(toy: Connection) -> None:
    before = _poll_threads()
    stream = toy.watch()
    assert _poll_threads() == before + 1
    toy.close()
    assert _until(lambda: _poll_threads() == before), "the polling thread outlived its connection"
    assert list(stream) == []
    assert stream.get(timeout=0) is None


@pytest.mark.parametrize("bad", ["\ufffe", "\uffff", "\ud800"])
def test_paths_refuse_characters_xml_cannot_carry(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"disk\.image"):
        DiskSpec(image=f"/images/a{bad}.qcow2")
    with pytest.raises(ValidationError, match="cdrom"):
        VMSpec(name="x", cdrom=f"/isos/a{bad}.iso")
    with pytest.raises(ValidationError, match="kernel"):
        VMSpec(name="x", kernel={"kernel": f"/boot/vmlinuz{bad}"})


@pytest.mark.parametrize("timeout", [-1, "soon", True])
def test_ensure_refuses_a_bad_timeout_before_acting(toy: Connection, timeout: object) -> None:
    vm = toy.create({"name": "t"})
    with pytest.raises(ValidationError, match="timeout"):
        vm.ensure("running", timeout=timeout)  # type: ignore[arg-type]
    assert vm.state is PowerState.STOPPED


def test_update_labels_takes_one_key_to_remove_as_a_string(toy: Connection) -> None:
    vm = toy.create({"name": "l", "labels": {"env": "prod", "e": "1", "n": "2"}})
    assert dict(vm.update_labels(remove="env")) == {"e": "1", "n": "2"}


def test_an_unknown_state_name_is_a_validation_error(toy: Connection) -> None:
    vm = toy.create({"name": "s"})
    with pytest.raises(ValidationError, match="runing"):
        vm.wait_for("runing", timeout=0)
    with pytest.raises(ValidationError, match="runing"):
        vm.ensure("runing")


def test_ensure_suggests_force_only_where_force_helps(toy: Connection) -> None:
    vm = toy.create({"name": "f"})
    vm.start()
    toy.backend._set(vm.uuid, PowerState.CRASHED)  # type: ignore[attr-defined]
    with pytest.raises(InvalidStateError, match="force=True"):
        vm.ensure("stopped")
    with pytest.raises(InvalidStateError) as caught:
        vm.ensure("paused")
    assert "force" not in str(caught.value)
