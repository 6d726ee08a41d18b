"""The loopback host's model of a VM's TPM, processor virtualization extensions and assigned devices, as
Microsoft documents them (docs/hyperv-fidelity.md, "TPM, nested virtualization and assigned devices")."""

from __future__ import annotations

import pytest

from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.hyperv.hardware import DEFAULT_ASSIGNABLE_DEVICES
from polyvisor_hyperv_loopback.powershell.errors import HostError


def test_enable_vmtpm_needs_generation_2_a_key_protector_and_an_off_vm() -> None:
    host = HyperVHost(transition_delay=0)
    gen1 = host.lifecycle.new_vm("g1", generation=1)
    with pytest.raises(HostError, match="Generation 1"):
        host.hardware.set_key_protector(gen1.id)
    with pytest.raises(HostError, match="Generation 1"):
        host.hardware.enable_tpm(gen1.id)
    gen2 = host.lifecycle.new_vm("g2", generation=2)
    with pytest.raises(HostError, match="key protector"):
        host.hardware.enable_tpm(gen2.id)
    host.hardware.set_key_protector(gen2.id)
    host.power.start_vm(gen2.id)
    with pytest.raises(HostError, match="current state"):
        host.hardware.enable_tpm(gen2.id)
    host.power.turn_off_vm(gen2.id)
    assert host.hardware.enable_tpm(gen2.id).config.tpm_enabled


def test_virtualization_extensions_change_only_while_off_and_without_dynamic_memory() -> None:
    host = HyperVHost(transition_delay=0)
    vm = host.lifecycle.new_vm("nested", generation=2)
    host.power.start_vm(vm.id)
    with pytest.raises(HostError, match="current state"):
        host.hardware.expose_virtualization_extensions(vm.id, True)
    host.power.turn_off_vm(vm.id)
    host.lifecycle.set_vm(vm.id, dynamic_memory=True)
    with pytest.raises(HostError, match="dynamic memory"):
        host.hardware.expose_virtualization_extensions(vm.id, True)
    host.lifecycle.set_vm(vm.id, dynamic_memory=False)
    assert host.hardware.expose_virtualization_extensions(vm.id, True).config.expose_virtualization_extensions


def test_an_assignable_device_goes_to_one_off_vm_that_turns_off_on_host_stop() -> None:
    host = HyperVHost(transition_delay=0)
    path = DEFAULT_ASSIGNABLE_DEVICES[0].location_path
    first = host.lifecycle.new_vm("first", generation=2)
    with pytest.raises(HostError, match="TurnOff"):
        host.hardware.add_assignable_device(first.id, path)
    host.lifecycle.set_vm(first.id, automatic_stop_action="TurnOff")
    host.hardware.add_assignable_device(first.id, path.lower())  # location paths compare without case
    assert path not in {device.location_path for device in host.hardware.free_devices()}
    second = host.lifecycle.new_vm("second", generation=2)
    host.lifecycle.set_vm(second.id, automatic_stop_action="TurnOff")
    with pytest.raises(HostError, match="already assigned to the virtual machine 'first'"):
        host.hardware.add_assignable_device(second.id, path)
    with pytest.raises(HostError, match="not dismounted"):
        host.hardware.add_assignable_device(second.id, "PCIROOT(7)#PCI(0000)")
    host.lifecycle.remove_vm(first.id)
    assert path in {device.location_path for device in host.hardware.free_devices()}
