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


def test_detach_nic_refuses_names_that_differ_only_in_case(
    conn: polyvisor.Connection, loopback_http: Any, vm_name: str
) -> None:
    # -Name matches case-insensitively (NEON Commands/ParameterResolvers.cs FilterNetworkAdaptersByName).
    host = _host(loopback_http)
    vm = conn.create({"name": vm_name})
    try:
        host.add_network_adapter(uuid.UUID(vm.uuid), "Lan", None, "00155D0000A1")
        host.add_network_adapter(uuid.UUID(vm.uuid), "LAN", None, "00155D0000A2")
        with pytest.raises(PolyvisorError, match="several adapters"):
            vm.detach_nic("00:15:5d:00:00:a1", live=False)
        names = sorted(n.name for n in host.get_vm(uuid.UUID(vm.uuid)).config.network_adapters)
        assert names == ["LAN", "Lan"]
    finally:
        vm.delete()
