"""Devices in a spec: a TPM, nested virtualization and host devices passed through, each gated by its capability.

A feature the connection does not declare is refused before anything is made (UnsupportedError naming it); one it
declares is kept and read back in ``info().extra`` (:func:`~polyvisor.model.device_facts`). A host
device is given to one VM at a time: a second VM asking for it is refused naming the first, and so is a device the
host does not list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from polyvisor import (
    VM,
    Connection,
    Feature,
    Firmware,
    HostDevice,
    InUseError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.device_calls import KIND_FEATURES
from polyvisor.testing.fixtures import SpecFactory, unique_name
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


def _firmware_for_tpm(conn: Connection) -> dict[str, Any]:
    # Hyper-V has a TPM on Generation 2 (UEFI) VMs only; libvirt and memory:// take it with either firmware.
    return {"firmware": Firmware.UEFI} if conn.supports(Feature.UEFI) else {}


def test_a_tpm_is_kept_and_reported(polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory) -> None:
    require(polyvisor_connection, Feature.TPM)
    vm = polyvisor_vm_factory("tpm", tpm=True, **_firmware_for_tpm(polyvisor_connection))
    assert vm.info().extra["tpm"] == "2.0"
    assert vm.capabilities().supports(Feature.TPM)
    plain = polyvisor_vm_factory("notpm")
    assert "tpm" not in plain.info().extra


def test_nested_virtualization_is_kept_and_reported(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory
) -> None:
    require(polyvisor_connection, Feature.NESTED_VIRTUALIZATION)
    vm = polyvisor_vm_factory("nested", nested_virtualization=True)
    assert vm.info().extra["nested"] is True
    assert "nested" not in polyvisor_vm_factory("flat").info().extra


@pytest.mark.parametrize(
    ("feature", "overrides"),
    [
        (Feature.TPM, {"tpm": True}),
        (Feature.NESTED_VIRTUALIZATION, {"nested_virtualization": True}),
        (Feature.HOST_DEVICES, {"host_devices": ["any-device"]}),
    ],
    ids=["tpm", "nested", "host-devices"],
)
def test_an_undeclared_device_option_is_refused_before_anything_is_made(
    polyvisor_connection: Connection, polyvisor_spec: SpecFactory, feature: Feature, overrides: dict[str, Any]
) -> None:
    if polyvisor_connection.supports(feature):
        pytest.skip(f"capability declared: {feature.value}")
    name = unique_name("undeclared")
    with pytest.raises(UnsupportedError) as caught:
        polyvisor_connection.create(polyvisor_spec(name, **overrides))
    assert caught.value.feature is feature
    assert not polyvisor_connection.exists(name)


def _free_device(conn: Connection) -> HostDevice:
    require(conn, Feature.HOST_DEVICES)
    devices = conn.host_devices()
    assert all(isinstance(device, HostDevice) for device in devices)
    for device in devices:
        if device.used_by is None and conn.supports(KIND_FEATURES[device.kind]):
            return device
    pytest.skip("the host lists no free device of a bus this connection passes through")


def test_a_host_device_goes_to_one_vm_at_a_time(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, polyvisor_spec: SpecFactory
) -> None:
    device = _free_device(polyvisor_connection)
    vm = polyvisor_vm_factory("dev", host_devices=[device.name])
    assert vm.info().extra["host_devices"] == [device.name]
    listed = {d.name: d for d in polyvisor_connection.host_devices()}
    assert listed[device.name].used_by == vm.name()

    second = unique_name("dev2")
    with pytest.raises(InUseError) as caught:
        polyvisor_connection.create(polyvisor_spec(second, host_devices=[device.name]))
    assert caught.value.users == (vm.name(),)
    assert vm.name() in str(caught.value)
    assert not polyvisor_connection.exists(second)

    vm.delete(storage=polyvisor_connection.supports(Feature.DELETE_STORAGE))
    freed = {d.name: d for d in polyvisor_connection.host_devices()}
    assert freed[device.name].used_by is None


def test_a_device_the_host_does_not_list_is_refused(
    polyvisor_connection: Connection, polyvisor_spec: SpecFactory
) -> None:
    require(polyvisor_connection, Feature.HOST_DEVICES)
    name = unique_name("nodev")
    with pytest.raises(ValidationError) as caught:
        polyvisor_connection.create(polyvisor_spec(name, host_devices=["pvconf-no-such-device"]))
    assert caught.value.field == "host_devices[0]"
    assert "pvconf-no-such-device" in str(caught.value)
    assert not polyvisor_connection.exists(name)
