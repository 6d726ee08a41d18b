"""create(): validation before any backend call, hostile input stored verbatim, nothing left after a failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polyvisor import VM, Connection, Feature, NotFoundError, PolyvisorError, PowerState, ValidationError, VMSpec
from polyvisor.testing.fixtures import SpecFactory, unique_name
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


def test_created_vm_is_stopped_with_its_spec(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("cr", cpus=2, memory_mib=96, description="made by the conformance kit")
    info = vm.info()
    assert info.state is PowerState.STOPPED
    assert info.cpus == 2
    assert info.memory_mib == 96
    assert info.description == "made by the conformance kit"
    assert not info.has_saved_state


HOSTILE_NAMES = ['it\'s "quoted"', "<b>&amp;<b>", "$(whoami);`id`|x", "ünï cödé ✓", "a" * 90]


@pytest.mark.parametrize("suffix", HOSTILE_NAMES, ids=["quotes", "markup", "shell", "unicode", "long"])
def test_hostile_names_are_stored_verbatim(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory, suffix: str
) -> None:
    name = (unique_name("h") + suffix)[:100]
    description = "line one\nline two <&> 'q' \"qq\" $(x) `y`"
    vm = polyvisor_vm_factory("h")  # a named neighbour proves the hostile VM touches nothing else
    hostile = polyvisor_connection.create(polyvisor_spec(name, description=description))
    try:
        assert hostile.name() == name
        assert polyvisor_connection.vm(name).uuid == hostile.uuid
        assert hostile.info().description == description
        assert polyvisor_connection.vm(vm.uuid).name() == vm.name()
    finally:
        hostile.delete(storage=polyvisor_connection.supports(Feature.DELETE_STORAGE))
    assert not polyvisor_connection.exists(name)


BAD_SPECS: list[dict[str, Any]] = [
    {"name": ""},
    {"name": "new\nline"},
    {"name": "slash/name"},
    {"name": "x" * 101},
    {"cpus": 0},
    {"cpus": -2},
    {"memory_mib": -512},
    {"memory_mib": "lots"},
    {"firmware": "coreboot"},
    {"secure_boot": True},
    {"disks": [{"size_mib": -1}]},
    {"disks": [{"size_mib": 10, "image": "/x.qcow2"}]},
    {"nics": [{"mac": "not-a-mac"}]},
    {"labels": {"bad key": "v"}},
    {"description": "nul\x00"},
    {"colour": "blue"},
]


@pytest.mark.parametrize("overrides", BAD_SPECS, ids=lambda o: next(iter(o)))
def test_invalid_specs_fail_before_any_backend_call(
    polyvisor_connection: Connection, overrides: dict[str, Any]
) -> None:
    count = len(polyvisor_connection.list())
    data = {"name": unique_name("bad"), "cpus": 1, "memory_mib": 64, **overrides}
    with pytest.raises(ValidationError) as caught:
        polyvisor_connection.create(VMSpec.from_dict(data))
    assert caught.value.field, "a validation error names the field"
    assert len(polyvisor_connection.list()) == count


def test_create_failure_leaves_nothing(polyvisor_connection: Connection, polyvisor_spec: SpecFactory) -> None:
    require(polyvisor_connection, Feature.NETWORKS)
    name = unique_name("rb")
    before = {info.uuid for info in polyvisor_connection.list()}
    spec = polyvisor_spec(name, disks=[{"size_mib": 8}], nics=[{"network": unique_name("no-such-net")}])
    with pytest.raises(PolyvisorError) as caught:
        polyvisor_connection.create(spec)
    assert isinstance(caught.value, NotFoundError | ValidationError)
    assert not polyvisor_connection.exists(name)
    assert {info.uuid for info in polyvisor_connection.list()} == before


def test_create_with_missing_image_fails_cleanly(polyvisor_connection: Connection, polyvisor_spec: SpecFactory) -> None:
    name = unique_name("img")
    spec = polyvisor_spec(name, disks=[{"size_mib": 8}, {"image": "/nonexistent/polyvisor/disk.qcow2"}])
    with pytest.raises(NotFoundError):
        polyvisor_connection.create(spec)
    assert not polyvisor_connection.exists(name)
