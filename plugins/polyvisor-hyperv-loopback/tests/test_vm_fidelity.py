"""Hyper-V behaviours the host models as Windows does (issue 8): each test names its source.

Sources: NEON = nforgeio/neonSDK Lib/Neon.HyperV/HyperVWmiDriver/Microsoft/HyperV/PowerShell/... (decompiled
cmdlets); DOCS = MicrosoftDocs/windows-powershell-docs docset/winserver2022-ps/Hyper-V/...; WSDOCS =
MicrosoftDocs/windowsserverdocs WindowsServerDocs/virtualization/hyper-v/What-s-new-in-Hyper-V-on-Windows.md.
"""

from __future__ import annotations

import uuid

import pytest

from polyvisor_hyperv_loopback.engine import CommandSpec, Engine, InvocationResult
from polyvisor_hyperv_loopback.errors import HostError
from polyvisor_hyperv_loopback.hyperv import HyperVHost


@pytest.fixture
def engine() -> Engine:
    return Engine(HyperVHost(transition_delay=0))


def run(engine: Engine, *commands: tuple[str, list[tuple[str | None, object]]]) -> InvocationResult:
    return engine.invoke_pipeline([CommandSpec(name, False, params) for name, params in commands])


def _vm(engine: Engine, name: str, generation: int = 2) -> uuid.UUID:
    return engine.host.new_vm(name, generation=generation).id


def test_nic_hot_add_and_remove_need_generation_2(engine: Engine) -> None:
    host = engine.host
    gen1 = _vm(engine, "g1", generation=1)
    host.start_vm(gen1)
    added = run(engine, ("Add-VMNetworkAdapter", [("VMName", "g1"), ("Name", "hot")]))
    assert len(added.errors) == 1
    assert [n.name for n in host.get_vm(gen1).config.network_adapters] == ["Network Adapter"]
    removed = run(engine, ("Get-VMNetworkAdapter", [("VMName", "g1")]), ("Remove-VMNetworkAdapter", []))
    assert len(removed.errors) == 1
    assert len(host.get_vm(gen1).config.network_adapters) == 1
    gen2 = _vm(engine, "g2")
    host.start_vm(gen2)
    assert run(engine, ("Add-VMNetworkAdapter", [("VMName", "g2"), ("Name", "hot")])).errors == []
    assert run(engine, ("Remove-VMNetworkAdapter", [("VMName", "g2"), ("Name", "hot")])).errors == []
    assert [n.name for n in host.get_vm(gen2).config.network_adapters] == ["Network Adapter"]
