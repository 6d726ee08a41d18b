"""The verb engine (:mod:`polyvisor.verbs`) without a face: its steps are driven here by hand, answer by answer.

A verb is a generator of I/O requests; these tests send the answers a hypervisor would give and check the requests
that come back, so the contract's rules are seen without threads, sleeps or a backend doing the work. The last
tests run one rule (repeating a shutdown the backend wants repeated) through both faces.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

import polyvisor.aio
from polyvisor import VM, Connection, InvalidStateError, PowerState, TimeoutError
from polyvisor.backend import Credentials, Deadline
from polyvisor.model import ShutdownMode, VMStatus
from polyvisor.testing.memory import MemoryBackend
from polyvisor.uri import URI
from polyvisor.verbs import engine
from polyvisor.verbs.ops import Change, Op, Read, Sleep, Steps, Subscribe, Unsubscribe
from polyvisor.verbs.waiting import FIRST_POLL, Waiting, wait

STOPPED = VMStatus(PowerState.STOPPED, "shut off")
RUNNING = VMStatus(PowerState.RUNNING, "running")
PAUSED = VMStatus(PowerState.PAUSED, "paused")
STARTING = VMStatus(PowerState.STARTING, "starting")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 50.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vm(host_name: str, clock: FakeClock) -> Iterator[VM]:
    """A stopped VM on a fresh memory host (with native events), its connection on the fake clock."""
    uri = URI.parse(f"memory:///{host_name}")
    with Connection(MemoryBackend(uri, Credentials()), uri, clock=clock) as conn:
        yield conn.create({"name": "engine"})


class Driver:
    """Steps driven by hand: ``send`` answers the last request and returns the next one."""

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps
        self.result: Any = None
        self.done = False

    def first(self) -> Op:
        return next(self.steps)

    def send(self, answer: object = None) -> Op | None:
        try:
            return self.steps.send(answer)
        except StopIteration as stop:
            self.result, self.done = stop.value, True
            return None


def test_a_verb_reads_checks_acts_and_waits(vm: VM) -> None:
    driver = Driver(engine.run_verb(vm, "start", timeout=5))
    assert isinstance(driver.first(), Read), "the state is read first"
    request = driver.send(STOPPED)
    assert isinstance(request, Change)
    assert request.doing == "running start"
    assert isinstance(driver.send(None), Read), "then the wait reads the state"
    assert driver.send(RUNNING) is None
    assert driver.done
    assert driver.result is RUNNING


def test_a_verb_already_at_its_target_sends_nothing(vm: VM) -> None:
    driver = Driver(engine.run_verb(vm, "start", timeout=5))
    driver.first()
    assert driver.send(RUNNING) is None
    assert driver.result is RUNNING


def test_a_verb_refused_in_a_state_raises_before_any_request(vm: VM) -> None:
    driver = Driver(engine.run_verb(vm, "shutdown", timeout=5, mode=ShutdownMode.DEFAULT))
    driver.first()
    with pytest.raises(InvalidStateError) as caught:
        driver.send(PAUSED)
    assert "resume() it first" in str(caught.value)


def test_a_failed_request_is_excused_when_the_vm_got_there_anyway(vm: VM) -> None:
    steps = engine.run_verb(vm, "start", timeout=5)
    next(steps)
    assert isinstance(steps.send(STOPPED), Change)
    refused = InvalidStateError("already running", state=PowerState.RUNNING, accepted=())
    assert isinstance(steps.throw(refused), Read), "the engine looks before it reports the failure"
    with pytest.raises(StopIteration) as finished:
        steps.send(RUNNING)
    assert finished.value.value is RUNNING


def test_a_failed_request_is_reported_when_the_vm_did_not_get_there(vm: VM) -> None:
    steps = engine.run_verb(vm, "start", timeout=5)
    next(steps)
    steps.send(STOPPED)
    refused = InvalidStateError("no", state=PowerState.STOPPED, accepted=())
    steps.throw(refused)
    with pytest.raises(InvalidStateError) as caught:
        steps.send(STOPPED)
    assert caught.value is refused


def test_a_transition_is_waited_out_before_the_check(vm: VM) -> None:
    driver = Driver(engine.run_verb(vm, "start", timeout=5))
    driver.first()
    assert isinstance(driver.send(STARTING), Read), "the settle wait reads again"
    assert isinstance(driver.send(STARTING), Subscribe), "memory:// has events: the wait subscribes"
    assert isinstance(driver.send(None), Read)
    assert isinstance(driver.send(STARTING), Sleep)
    assert isinstance(driver.send(None), Read)
    assert isinstance(driver.send(RUNNING), Unsubscribe), "the settle wait ends its subscription"
    assert driver.send(None) is None, "running already: start has nothing to do"
    assert driver.result is RUNNING


def _answer_stopped_until_it_ends(steps: Steps[VMStatus], clock: FakeClock, requests: list[Op]) -> None:
    """Answer every read (the last one too) with "stopped" and let every sleep pass on the fake clock, recording
    the requests."""
    answer: object = STOPPED
    while True:
        request = steps.send(answer)
        requests.append(request)
        if isinstance(request, Sleep):
            clock.sleep(request.seconds)
        answer = STOPPED if isinstance(request, Read) else None


def test_a_wait_times_out_on_its_deadline_clock_and_unsubscribes_first(vm: VM, clock: FakeClock) -> None:
    waiting = Waiting(vm, lambda s: s.state is PowerState.RUNNING, Deadline(1, clock), "to become running")
    steps = wait(waiting)
    requests: list[Op] = [next(steps)]
    with pytest.raises(TimeoutError) as caught:
        _answer_stopped_until_it_ends(steps, clock, requests)
    assert "timed out after 1s waiting to become running" in str(caught.value)
    assert isinstance(requests[0], Read)
    assert isinstance(requests[1], Subscribe), "not there yet: events may end the sleeps early"
    assert isinstance(requests[-1], Unsubscribe), "the subscription ends before the error leaves"
    sleeps = [request.seconds for request in requests if isinstance(request, Sleep)]
    assert sleeps[0] == FIRST_POLL
    assert all(a < b for a, b in itertools.pairwise(sleeps[:-1])), "each sleep grows (but the last)"
    assert sum(sleeps) == pytest.approx(1.0), "the last sleep ends at the deadline, not past it"


def test_a_deadline_reads_the_clock_it_is_given(clock: FakeClock) -> None:
    deadline = Deadline(10, clock)
    clock.now += 4
    assert deadline.remaining() == 6
    assert not deadline.expired
    clock.now += 6
    assert deadline.expired


# -- one rule through both faces ------------------------------------------------------------------------------------
class SecondTimeLucky(MemoryBackend):
    """A guest that obeys only the second shutdown request, on a backend that asks for requests to be repeated."""

    shutdown_retry_interval = 0.05

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.shutdowns = 0

    def shutdown(self, uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
        self.shutdowns += 1
        if self.shutdowns >= 2:
            super().shutdown(uuid, mode, deadline)


def _repeating(host_name: str) -> Connection:
    uri = URI.parse(f"memory:///{host_name}")
    return Connection(SecondTimeLucky(uri, Credentials()), uri)


def test_the_sync_face_repeats_a_shutdown_the_backend_wants_repeated(host_name: str) -> None:
    with _repeating(host_name) as conn:
        vm = conn.create({"name": "lucky"})
        vm.start()
        assert vm.shutdown(timeout=10).state is PowerState.STOPPED
        assert isinstance(conn.backend, SecondTimeLucky)
        assert conn.backend.shutdowns == 2


def test_the_asyncio_face_repeats_a_shutdown_the_backend_wants_repeated(host_name: str) -> None:
    async def run() -> int:
        conn = polyvisor.aio.AsyncConnection(_repeating(host_name))
        async with conn:
            vm = await conn.create({"name": "lucky"})
            await vm.start()
            assert (await vm.shutdown(timeout=10)).state is PowerState.STOPPED
            backend = conn.backend
            assert isinstance(backend, SecondTimeLucky)
            return backend.shutdowns

    assert asyncio.run(run()) == 2
