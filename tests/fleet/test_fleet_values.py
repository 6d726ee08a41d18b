"""The fleet's plain values and pure functions: results, selections, placement. No threads, no hosts."""

from __future__ import annotations

import pickle

import pytest

from polyvisor import FleetError, FleetResult, HostResult, Placement, PlacementError, Selection
from polyvisor.errors import ConnectionError, TimeoutError, ValidationError
from polyvisor.fleet import Candidate, choose_host, free_memory_mib
from polyvisor.model import DetailsNotLoaded, HostInfo, PowerState, VMDetails, VMInfo, VMStatus

UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def _info(name: str, state: PowerState = PowerState.RUNNING, memory: int = 512, **labels: str) -> VMInfo:
    return VMInfo(UUID, name, VMStatus(state, state.value), details=VMDetails(1, memory, labels, "", {}))


def test_a_fleet_result_reads_like_a_mapping_and_says_who_failed() -> None:
    result: FleetResult[int] = FleetResult(
        [
            HostResult("a", "test:///default", 1, elapsed=0.1),
            HostResult("b", "hyperv://h/", None, TimeoutError("no answer", host="b"), 2.0),
            HostResult("c", "qemu:///system", 0),
        ]
    )
    assert list(result) == ["a", "b", "c"]
    assert len(result) == 3
    assert "b" in result
    assert result["a"].unwrap() == 1
    assert result.values == {"a": 1, "c": 0}
    assert list(result.errors) == ["b"]
    assert result.partial
    assert not result.ok
    assert repr(result) == "<FleetResult 2 ok, 1 failed: b>"
    with pytest.raises(TimeoutError):
        result["b"].unwrap()
    with pytest.raises(FleetError) as caught:
        result.raise_for_errors()
    assert str(caught.value) == "1 of 3 failed: b: no answer [host b]"
    assert pickle.loads(pickle.dumps(caught.value)).errors.keys() == {"b"}
    assert result.map_values(str).values == {"a": "1", "c": "0"}
    whole: FleetResult[int] = FleetResult([HostResult("a", "u", 1)])
    assert whole.raise_for_errors() is whole
    assert whole.ok
    assert not whole.partial


def test_per_vm_results_are_keyed_host_slash_name() -> None:
    result = FleetResult([HostResult("kvm1", "qemu:///system", None, vm="web"), HostResult("hv01", "u", 2)])
    assert list(result) == ["kvm1/web", "hv01"]


def test_a_selection_matches_every_criterion() -> None:
    web = _info("web", team="infra")
    assert Selection().matches("any", web)
    assert Selection(labels={"team": "infra"}).matches("h", web)
    assert not Selection(labels={"team": "db"}).matches("h", web)
    assert Selection(hosts=frozenset({"h"})).matches("h", web)
    assert not Selection(hosts=frozenset({"h"})).matches("other", web)
    assert Selection(names=frozenset({"web"})).matches("h", web)
    assert Selection(names=frozenset({UUID.upper()})).matches("h", web)
    assert Selection(names=frozenset({"h/web"})).matches("h", web)
    assert not Selection(names=frozenset({"h/web"})).matches("g", web)
    assert Selection(states=frozenset({"running"})).matches("h", web)  # type: ignore[arg-type]
    assert not Selection(states=frozenset({PowerState.STOPPED})).matches("h", web)
    assert Selection(labels={"team": "infra"}).needs_details
    bare = VMInfo(UUID, "web", VMStatus(PowerState.RUNNING, "running"))
    with pytest.raises(DetailsNotLoaded):
        Selection(labels={"team": "infra"}).matches("h", bare)
    with pytest.raises(ValidationError, match="not a power state"):
        Selection(states=frozenset({"asleep"}))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="list of hosts"):
        Selection(hosts="h")  # type: ignore[arg-type]
    assert "labels team=infra" in Selection(labels={"team": "infra"}).describe()


def test_free_memory_is_reported_or_computed_from_vms_holding_memory() -> None:
    host = HostInfo("h", "x", "1", 8, 4096, "x86_64")
    vms = [_info("a", memory=1024), _info("b", PowerState.STOPPED, 2048), _info("c", PowerState.PAUSED, 512)]
    assert free_memory_mib(host, vms) == 4096 - 1024 - 512
    assert free_memory_mib(host, None) is None
    reported = HostInfo("h", "x", "1", 8, 4096, "x86_64", free_memory_mib=100)
    assert free_memory_mib(reported, vms) == 100
    assert free_memory_mib(host, [_info("big", memory=9000)]) == 0


def test_choose_host_takes_the_most_free_memory_and_explains_every_refusal() -> None:
    candidates = [
        Candidate("hv01", {"site": "a"}, free_memory_mib=512, cpus=8),
        Candidate("kvm1", error=TimeoutError("no answer", host="kvm1")),
        Candidate("kvm2", {"site": "a"}, free_memory_mib=8192, cpus=2),
        Candidate("kvm3", {"site": "b"}, free_memory_mib=16384, cpus=16),
        Candidate("dead", error=ConnectionError("refused", host="dead")),
    ]
    assert choose_host(candidates, memory_mib=1024) == "kvm3"
    assert choose_host(candidates, memory_mib=1024, placement=Placement(labels={"site": "a"})) == "kvm2"
    assert choose_host(candidates, memory_mib=1024, placement=Placement(hosts=["kvm2", "hv01"])) == "kvm2"
    refused = choose_host(candidates, memory_mib=2048, cpus=4, placement=Placement(labels={"site": "a"}))
    assert isinstance(refused, PlacementError)
    assert refused.reasons == {
        "hv01": "512 MiB free, 2048 needed",
        "kvm1": "timed out",
        "kvm2": "2 CPUs, 4 needed",
        "kvm3": "lacks label site=a",
        "dead": "unreachable: refused [host dead]",
    }
    assert "hv01: 512 MiB free, 2048 needed; kvm1: timed out" in str(refused)
    floor = choose_host(candidates, memory_mib=64, placement=Placement(min_free_memory_mib=10000))
    assert floor == "kvm3"
    none = choose_host([], memory_mib=64)
    assert isinstance(none, PlacementError)
    with pytest.raises(ValidationError):
        Placement(min_free_memory_mib=-1)
