"""The backend against behaviours the loopback host models as Windows does (issue 8: checkpoints, drives, NICs,
delete), over both transports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, PowerState
from polyvisor.errors import PolyvisorError, UnsupportedError

pytestmark = pytest.mark.hyperv

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def test_nic_hotplug_is_generation_2_only(conn: polyvisor.Connection, vm_name: str) -> None:
    gen1 = conn.create({"name": vm_name, "firmware": "bios", "nics": [{"network": "Default Switch"}]})
    gen2 = conn.create({"name": vm_name + "-2", "firmware": "uefi"})
    try:
        assert Feature.NIC_HOTPLUG not in gen1.capabilities()
        assert Feature.NIC_HOTPLUG in gen2.capabilities()
        assert Feature.NIC_ATTACH in gen1.capabilities()
        gen1.start()
        with pytest.raises(UnsupportedError) as info:
            gen1.attach_nic({"network": "Default Switch"})
        assert info.value.feature is Feature.NIC_HOTPLUG
        backend = conn._backend  # the primitive itself refuses too, whatever the caller checked
        assert backend is not None
        with pytest.raises(UnsupportedError) as info:
            backend.attach_nic(gen1.uuid, polyvisor.NicSpec(network="Default Switch"), live=True)
        assert info.value.feature is Feature.NIC_HOTPLUG
        gen2.start()
        mac2 = gen2.attach_nic({"network": "Default Switch"})
        gen2.detach_nic(mac2)
    finally:
        for vm in (gen1, gen2):
            vm.stop()
            vm.delete()
