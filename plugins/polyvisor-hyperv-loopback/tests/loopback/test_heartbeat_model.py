"""The guest's heartbeat as the host models it: Get-VM's Heartbeat (a VMHeartbeatStatus)."""

from __future__ import annotations

import io

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter


def _heartbeat(host: HyperVHost) -> object:
    console = Console(io.BytesIO(), io.StringIO())
    (vm,) = Interpreter(Session(host), default_registry(), console).run("Get-VM -Name beat")
    return vm.Heartbeat  # type: ignore[attr-defined]


def test_the_heartbeat_answers_once_the_guest_booted_and_only_while_running() -> None:
    host = HyperVHost(transition_delay=0, kvp_delay=3600.0)
    vm = host.lifecycle.new_vm("beat", generation=2)
    assert _heartbeat(host) is None  # Off: no heartbeat
    host.power.start_vm(vm.id)
    assert _heartbeat(host).name == "NoContact"  # type: ignore[attr-defined]  # the guest's integration services are not up yet
    host.kvp_delay = 0.0
    assert _heartbeat(host).name == "OkApplicationsHealthy"  # type: ignore[attr-defined]
    host.guests.set_guest(vm.id, "no-kvp")  # the heartbeat is a kernel driver: no KVP daemon changes nothing
    assert _heartbeat(host).name == "OkApplicationsHealthy"  # type: ignore[attr-defined]
    host.power.suspend_vm(vm.id)
    assert _heartbeat(host) is None
