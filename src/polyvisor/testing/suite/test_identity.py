"""Identity: UUIDs, names, lookups, listings."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from polyvisor import VM, AlreadyExistsError, Connection, Feature, NotFoundError, PowerState
from polyvisor.testing.fixtures import SpecFactory, unique_name

VMFactory = Callable[..., VM]


def test_lookup_by_name_and_uuid(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("id")
    assert str(uuid.UUID(vm.uuid)) == vm.uuid, "UUIDs are canonical lowercase strings"
    assert polyvisor_connection.vm(vm.seen_name) == vm
    assert polyvisor_connection.vm(vm.uuid) == vm
    assert polyvisor_connection.vm(vm.uuid.upper()).uuid == vm.uuid


def test_missing_vm_is_not_found(polyvisor_connection: Connection) -> None:
    with pytest.raises(NotFoundError) as caught:
        polyvisor_connection.vm(unique_name("missing"))
    assert isinstance(caught.value, LookupError)
    with pytest.raises(NotFoundError):
        polyvisor_connection.vm(str(uuid.uuid4()))
    assert not polyvisor_connection.exists(str(uuid.uuid4()))


def test_listing_includes_new_vm(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    before = {info.uuid for info in polyvisor_connection.list()}
    vm = polyvisor_vm_factory("ls")
    infos = {info.uuid: info for info in polyvisor_connection.list()}
    assert set(infos) - before == {vm.uuid}
    info = infos[vm.uuid]
    assert info.name == vm.seen_name
    assert info.state is PowerState.STOPPED
    assert polyvisor_connection.vm(info).uuid == vm.uuid, "a handle from a listing entry"
    assert vm.name() == info.name


def test_names_are_unique(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory
) -> None:
    vm = polyvisor_vm_factory("dup")
    count = len(polyvisor_connection.list())
    with pytest.raises(AlreadyExistsError):
        polyvisor_connection.create(polyvisor_spec(vm.seen_name))
    assert len(polyvisor_connection.list()) == count


def test_deleted_vm_handle_reports_not_found(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("gone")
    vm.delete(storage=vm.connection.supports(Feature.DELETE_STORAGE))
    with pytest.raises(NotFoundError):
        vm.status()
    with pytest.raises(NotFoundError):
        vm.start()
