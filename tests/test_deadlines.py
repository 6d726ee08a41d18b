"""Deadlines: every blocking verb returns or raises TimeoutError in time, and the backend gets the deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import polyvisor
from polyvisor import Connection, PowerState
from polyvisor.backend import Credentials, Deadline
from polyvisor.model import ShutdownMode
from polyvisor.testing.memory import GUEST_BEHAVIOUR_LABEL, MemoryBackend
from polyvisor.uri import URI

STUBBORN = {GUEST_BEHAVIOUR_LABEL: "ignore-shutdown"}


def test_shutdown_of_a_guest_that_ignores_it_times_out_in_time_and_leaves_it_running(mem: Connection) -> None:
    vm = mem.create({"name": "stubborn", "labels": STUBBORN})
    vm.start()
    started = time.monotonic()
    with pytest.raises(polyvisor.TimeoutError) as caught:
        vm.shutdown(timeout=1)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 2.0
    assert "1s" in str(caught.value)
    assert vm.state() is PowerState.RUNNING, "a graceful shutdown never turns into a power-off"


def test_ensure_stopped_times_out_in_time(mem: Connection) -> None:
    vm = mem.create({"name": "stubborn", "labels": STUBBORN})
    vm.start()
    started = time.monotonic()
    with pytest.raises(polyvisor.TimeoutError):
        vm.ensure("stopped", timeout=1)
    assert time.monotonic() - started < 2.0
    assert vm.state() is PowerState.RUNNING


def test_a_behaving_guest_shuts_down_well_within_the_deadline(mem: Connection) -> None:
    vm = mem.create({"name": "polite"})
    vm.start()
    started = time.monotonic()
    assert vm.shutdown(timeout=1).state is PowerState.STOPPED
    assert time.monotonic() - started < 1.0


class DeadlineRecording(MemoryBackend):
    """Keeps (primitive, timeout, remaining) for every deadline it receives."""

    seen: list[tuple[str, float, float]]

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.seen = []

    def _note(self, name: str, deadline: Deadline) -> None:
        assert isinstance(deadline, Deadline)
        self.seen.append((name, deadline.timeout, deadline.remaining()))

    def start(self, uuid: str, deadline: Deadline) -> None:
        self._note("start", deadline)
        super().start(uuid, deadline)

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self._note("shutdown", deadline)
        super().shutdown(uuid, mode, deadline)

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        self._note("delete", deadline)
        super().delete(uuid, storage=storage, deadline=deadline)


@pytest.fixture
def recording(host_name: str) -> Iterator[tuple[Connection, DeadlineRecording]]:
    uri = URI.parse(f"memory:///{host_name}")
    backend = DeadlineRecording(uri, Credentials())
    with Connection(backend, uri) as conn:
        yield conn, backend


def test_the_backend_receives_the_verbs_deadline(recording: tuple[Connection, DeadlineRecording]) -> None:
    conn, backend = recording
    vm = conn.create({"name": "d"})
    vm.start(timeout=7)
    vm.shutdown(timeout=3)
    vm.delete(timeout=5)
    assert [name for name, _, _ in backend.seen] == ["start", "shutdown", "delete"]
    for (name, timeout, remaining), given in zip(backend.seen, (7, 3, 5), strict=True):
        assert timeout == given, name
        assert 0 < remaining <= given, name


def test_ensure_hands_one_deadline_to_every_step(recording: tuple[Connection, DeadlineRecording]) -> None:
    conn, backend = recording
    vm = conn.create({"name": "e"})
    vm.ensure("stopped", timeout=0)  # already there: no step, no deadline needed
    vm.ensure("running", timeout=4)
    vm.ensure("stopped", timeout=4)
    assert [name for name, _, _ in backend.seen] == ["start", "shutdown"]
    assert all(timeout == 4 and 0 < remaining <= 4 for _, timeout, remaining in backend.seen)


def test_deadline_never_and_check() -> None:
    assert Deadline.never().remaining() == float("inf")
    assert not Deadline.never().expired
    past = Deadline(0)
    assert past.expired
    with pytest.raises(polyvisor.TimeoutError, match="creating"):
        past.check("creating the VM", vm="x")
    Deadline(10).check("anything")  # not expired: no error
