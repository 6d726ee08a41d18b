"""The verb table, enforced by the core alone: every (verb, settled state) pair on memory://.

A refused transition never reaches the backend, a verb whose target is the current state does nothing, and an
allowed one calls its primitive exactly once. These rules live in the core, so memory:// proves them for every
backend; the per-backend kit only needs the transitions a hypervisor really performs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from polyvisor import Connection, Feature, InvalidStateError, PowerState, UnsupportedError
from polyvisor.backend import Credentials
from polyvisor.model import VMStatus
from polyvisor.testing.memory import MemoryBackend
from polyvisor.transitions import SETTLED_STATES, VERBS
from polyvisor.uri import URI
from polyvisor.vm import VM

P = PowerState
NATURAL = {P.STOPPED: [], P.RUNNING: ["start"], P.PAUSED: ["start", "pause"], P.SAVED: ["start", "save"]}
"""Settled states memory:// reaches by itself, and how."""


class StateForcing(MemoryBackend):
    """Reports a forced state (suspended, crashed, unknown) until a primitive changes the state (calls are
    recorded, as on every ``memory://``)."""

    forced: dict[str, PowerState]

    def __init__(self, uri: URI, credentials: Credentials) -> None:
        super().__init__(uri, credentials)
        self.forced = {}

    def status(self, uuid: str) -> VMStatus:
        if uuid in self.forced:
            return VMStatus(self.forced[uuid], f"forced {self.forced[uuid].value}")
        return super().status(uuid)

    def _set(self, uuid: str, state: PowerState) -> None:
        self.forced.pop(uuid, None)
        super()._set(uuid, state)


@pytest.fixture
def conn(host_name: str) -> Iterator[Connection]:
    uri = URI.parse(f"memory:///{host_name}")
    with Connection(StateForcing(uri, Credentials()), uri) as conn:
        yield conn


def _backend(conn: Connection) -> StateForcing:
    assert isinstance(conn.backend, StateForcing)
    return conn.backend


def _vm_in(conn: Connection, state: PowerState) -> VM:
    vm = conn.create({"name": f"vm-{state.value}"})
    for step in NATURAL.get(state, []):
        getattr(vm, step)(timeout=5)
    if state not in NATURAL:
        _backend(conn).forced[vm.uuid] = state
    assert vm.state() is state
    _backend(conn).calls.clear()
    return vm


def _call(vm: VM, verb: str) -> VMStatus | None:
    if verb == "delete":
        vm.delete(timeout=5)
        return None
    status: VMStatus = getattr(vm, verb)(timeout=5)
    return status


PAIRS = sorted(itertools.product(VERBS, SETTLED_STATES))


@pytest.mark.parametrize(("verb", "state"), PAIRS, ids=[f"{v}-from-{s.value}" for v, s in PAIRS])
def test_every_verb_from_every_settled_state(conn: Connection, verb: str, state: PowerState) -> None:
    row = VERBS[verb]
    vm = _vm_in(conn, state)
    backend = _backend(conn)
    if row.target is state:
        status = _call(vm, verb)
        assert status is not None
        assert status.state is state
        assert backend.mutations() == [], f"{verb} on a {state.value} VM is already done: the backend is not called"
    elif not row.allows(state):
        with pytest.raises(InvalidStateError) as caught:
            _call(vm, verb)
        assert caught.value.state is state
        assert set(caught.value.accepted) == row.accepts & SETTLED_STATES
        assert state.value in str(caught.value)
        assert backend.mutations() == [], f"a refused {verb} from {state.value} reached the backend"
        assert vm.state() is state, "a refused verb changes nothing"
    else:
        status = _call(vm, verb)
        assert backend.mutations() == [verb], f"{verb} from {state.value} calls its primitive exactly once"
        if verb == "delete":
            assert not conn.exists(vm.uuid)
        else:
            assert status is not None
            assert status.state is (row.target or P.RUNNING)


def test_the_table_is_what_the_test_walks() -> None:
    assert len(PAIRS) == len(VERBS) * len(SETTLED_STATES)
    assert {verb for verb, _ in PAIRS} == set(VERBS)


class WithoutFeature(StateForcing):
    """A host whose probe takes away the feature the test names."""

    missing: Feature | None = None

    def probe_features(self) -> frozenset[Feature]:
        return frozenset(set(Feature) - {self.missing} if self.missing else set(Feature))


GATED = sorted(name for name, verb in VERBS.items() if verb.feature is not None)


@pytest.mark.parametrize("verb", GATED)
def test_a_verb_whose_feature_is_missing_never_reaches_the_backend(host_name: str, verb: str) -> None:
    feature = VERBS[verb].feature
    assert feature is not None

    class Gated(WithoutFeature):
        missing = feature

    uri = URI.parse(f"memory:///{host_name}")
    backend = Gated(uri, Credentials())
    with Connection(backend, uri) as conn:
        state = sorted(VERBS[verb].accepts & SETTLED_STATES)[0]
        vm = conn.create({"name": "gated"})
        backend.forced[vm.uuid] = state  # reached without the missing feature
        backend.calls.clear()
        with pytest.raises(UnsupportedError) as caught:
            _call(vm, verb)
        assert caught.value.feature is feature
        assert backend.mutations() == []
        assert vm.state() is state
