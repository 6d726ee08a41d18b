"""Every verb from every way of reaching its from-state.

A state reached one way can differ from the same state reached another way (a VM saved while paused restores
paused on some hypervisors), so the suite covers every pair of consecutive verbs: for each verb leading into a
state and each verb the contract accepts from that state, one walk runs the first and then the second, checking the
state after every step. One VM walks the whole graph, so real guests boot once per walk, not once per pair.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from polyvisor import VM, Feature, PolyvisorError, PowerState
from polyvisor.testing.suite._support import lacks_graceful_shutdown
from polyvisor.transitions import VERBS

VMFactory = Callable[..., VM]
P = PowerState
WALKED = (P.STOPPED, P.RUNNING, P.PAUSED, P.SAVED)


@dataclass(frozen=True)
class Edge:
    """One verb taken from one state, and where the contract says it leads."""

    verb: str
    source: PowerState
    target: PowerState

    def __str__(self) -> str:
        return f"{self.source.value} -{self.verb}-> {self.target.value}"


CREATED = Edge("create", P.STOPPED, P.STOPPED)


def edges(features: frozenset[Feature], *, graceful: bool = True) -> list[Edge]:
    """Every (verb, from-state) the contract accepts among the walked states, given the declared features (and
    without ``shutdown`` when the VM has no graceful shutdown: ``_support.lacks_graceful_shutdown``)."""
    out = []
    for verb in VERBS.values():
        if verb.name == "delete" or (verb.feature is not None and verb.feature not in features):
            continue
        if verb.name == "shutdown" and not graceful:
            continue
        for state in WALKED:
            if verb.allows(state) and state is not verb.target:
                out.append(Edge(verb.name, state, verb.target or state))
    return out


def plan_walk(features: frozenset[Feature], *, graceful: bool = True) -> tuple[list[Edge], set[tuple[Edge, Edge]]]:
    """Return a walk from a new VM that covers every pair of consecutive edges, and the pairs."""
    graph = edges(features, graceful=graceful)
    outgoing = {state: [edge for edge in graph if edge.source is state] for state in WALKED}
    pairs = {(a, b) for a in [CREATED, *graph] for b in outgoing[a.target]}
    uncovered = set(pairs)
    walk: list[Edge] = []
    last = CREATED
    while uncovered:
        route = _route_to_uncovered(last, outgoing, uncovered)
        if route is None:
            break  # the rest cannot be reached from here (cannot happen in the contract's graph)
        for edge in route:
            uncovered.discard((last, edge))
            walk.append(edge)
            last = edge
    return walk, pairs


def _route_to_uncovered(
    last: Edge, outgoing: dict[PowerState, list[Edge]], uncovered: set[tuple[Edge, Edge]]
) -> list[Edge] | None:
    """Breadth-first: the shortest run of edges whose final step is an uncovered pair."""
    queue: deque[tuple[Edge, list[Edge]]] = deque([(last, [])])
    seen = {last}
    while queue:
        node, route = queue.popleft()
        for edge in outgoing[node.target]:
            if (node, edge) in uncovered:
                return [*route, edge]
            if edge not in seen:
                seen.add(edge)
                queue.append((edge, [*route, edge]))
    return None


def test_the_walk_covers_every_pair() -> None:
    """The planner itself: with every feature, all pairs are covered, including the paused-then-saved path."""
    every = frozenset(Feature)
    walk, pairs = plan_walk(every)
    covered = set(zip([CREATED, *walk], walk, strict=False))
    assert pairs <= covered
    assert (Edge("save", P.PAUSED, P.SAVED), Edge("start", P.SAVED, P.RUNNING)) in pairs
    # A VM without a graceful shutdown (an architecture that carries none) walks every other verb.
    walk, pairs = plan_walk(every, graceful=False)
    assert all(edge.verb != "shutdown" for edge in walk)
    assert pairs <= set(zip([CREATED, *walk], walk, strict=False))


def test_every_verb_from_every_way_of_reaching_its_state(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("walk")
    features = frozenset(vm.capabilities().features)
    walk, _ = plan_walk(features, graceful=not lacks_graceful_shutdown(vm.connection, features))
    previous = CREATED
    for step, edge in enumerate(walk, 1):
        assert vm.state() is edge.source, f"step {step}: expected {edge.source.value} before {edge}"
        where = f"step {step} of {len(walk)}: {edge} after {previous}"
        try:
            status = getattr(vm, edge.verb)(timeout=120)
        except PolyvisorError as error:
            pytest.fail(f"{where} raised {type(error).__name__}: {error}")
        assert status.state is edge.target, f"{where} returned {status}"
        assert vm.state() is edge.target, f"{where}: the hypervisor reports {vm.status()}"
        previous = edge
