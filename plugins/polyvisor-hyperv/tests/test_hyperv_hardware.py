"""A TPM, nested virtualization and assigned host devices on Hyper-V (issue 19), over both transports against the
loopback host: what the backend asks of the host, what the host then holds, and what is refused before anything is
made (see docs/hyperv-fidelity.md for the Windows behaviour the host models)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, InUseError, UnsupportedError, ValidationError

GPU = "PCIROOT(0)#PCI(0300)#PCI(0000)"
NVME = "PCIROOT(0)#PCI(1D00)#PCI(0000)"


def _record(loopback: Any, vm: polyvisor.VM) -> Any:
    return loopback.engine.host.get_vm(uuid.UUID(vm.uuid))


def _names(loopback: Any) -> set[str]:
    return {vm.name for vm in loopback.engine.host.list_vms()}


def test_a_tpm_is_a_local_key_protector_and_enable_vmtpm_on_generation_2(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    assert conn.supports(Feature.TPM)
    vm = conn.create({"name": vm_name, "firmware": "uefi", "tpm": True})
    try:
        config = _record(loopback_http, vm).config
        assert config.tpm_enabled
        assert config.key_protector is not None
        assert vm.info().extra["tpm"] == "2.0"
        assert vm.capabilities().supports(Feature.TPM)
    finally:
        vm.delete()


def test_a_tpm_on_generation_1_or_with_a_model_is_refused_before_anything_is_made(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    with pytest.raises(ValidationError) as generation:
        conn.create({"name": vm_name, "tpm": True})
    assert generation.value.field == "tpm"
    assert "Generation 2" in str(generation.value)
    with pytest.raises(ValidationError) as model:
        conn.create({"name": vm_name, "firmware": "uefi", "tpm": {"model": "tpm-crb"}})
    assert model.value.field == "tpm.model"
    assert vm_name not in _names(loopback_http)
    plain = conn.create({"name": vm_name})
    try:
        assert not plain.capabilities().supports(Feature.TPM)  # Generation 1
        assert "tpm" not in plain.info().extra
    finally:
        plain.delete()


def test_nested_virtualization_exposes_the_extensions_and_refuses_dynamic_memory(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    vm = conn.create({"name": vm_name, "nested_virtualization": True})
    try:
        assert _record(loopback_http, vm).config.expose_virtualization_extensions
        assert vm.info().extra["nested"] is True
    finally:
        vm.delete()
    dynamic = {"memory_mib": 512, "dynamic_memory": {"minimum_mib": 256, "maximum_mib": 1024}}
    with pytest.raises(ValidationError) as caught:
        conn.create({"name": vm_name, "nested_virtualization": True, **dynamic})
    assert caught.value.field == "nested_virtualization"
    assert vm_name not in _names(loopback_http)


def test_an_assigned_device_goes_to_one_vm_and_usb_is_not_offered(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    devices = {device.name: device for device in conn.host_devices()}
    assert {GPU, NVME} <= set(devices)
    assert devices[GPU].used_by is None
    assert not conn.supports(Feature.USB_PASSTHROUGH)
    vm = conn.create({"name": vm_name, "firmware": "uefi", "host_devices": [GPU]})
    try:
        config = _record(loopback_http, vm).config
        assert config.assigned_devices == [GPU]
        assert config.automatic_stop_action == "TurnOff"
        assert vm.info().extra["host_devices"] == [GPU]
        assert {d.name: d.used_by for d in conn.host_devices()}[GPU] == vm_name
        with pytest.raises(InUseError) as caught:
            conn.create({"name": f"{vm_name}-2", "host_devices": [GPU]})
        assert caught.value.users == (vm_name,)
        assert f"{vm_name}-2" not in _names(loopback_http)
    finally:
        vm.delete()
    assert {d.name: d.used_by for d in conn.host_devices()}[GPU] is None
    dynamic = {"memory_mib": 512, "dynamic_memory": {"minimum_mib": 256, "maximum_mib": 1024}}
    with pytest.raises(ValidationError):
        conn.create({"name": vm_name, "host_devices": [NVME], **dynamic})
    with pytest.raises(ValidationError):
        conn.create({"name": vm_name, "host_devices": ["PCIROOT(9)#PCI(0000)"]})
    assert vm_name not in _names(loopback_http)


def test_unsupported_usb_says_so(conn: polyvisor.Connection) -> None:
    with pytest.raises(UnsupportedError) as caught:
        conn.capabilities.require(Feature.USB_PASSTHROUGH)
    assert caught.value.feature is Feature.USB_PASSTHROUGH
