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


def test_nic_name_is_a_case_insensitive_wildcard(engine: Engine) -> None:
    # NEON Commands/ParameterResolvers.cs FilterNetworkAdaptersByName; CmdletErrorMessages.resx
    # VMNetworkAdapter_NoneFound.
    host = engine.host
    vm_id = _vm(engine, "n")
    host.add_network_adapter(vm_id, "Lan [1]", None)
    host.add_network_adapter(vm_id, "lan-2", None)
    wild = run(engine, ("Get-VMNetworkAdapter", [("VMName", "n"), ("Name", "LAN*")]))
    assert sorted(o.Name for o in wild.output) == ["Lan [1]", "lan-2"]  # type: ignore[attr-defined]
    literal = run(engine, ("Get-VMNetworkAdapter", [("VMName", "n"), ("Name", "lan `[1`]")]))
    assert [o.Name for o in literal.output] == ["Lan [1]"]  # type: ignore[attr-defined]
    for cmdlet in ("Get-VMNetworkAdapter", "Remove-VMNetworkAdapter"):
        missing = run(engine, (cmdlet, [("VMName", "n"), ("Name", "nothing*")]))
        assert missing.terminating is not None, cmdlet
        assert missing.terminating.category == "ObjectNotFound"
        assert missing.terminating.fully_qualified_error_id.startswith("ObjectNotFound,")
        assert "No network adapter was found with the given criteria." in missing.terminating.message
    run(engine, ("Remove-VMNetworkAdapter", [("VMName", "n"), ("Name", "LAN-2")]))
    assert sorted(n.name for n in host.get_vm(vm_id).config.network_adapters) == ["Lan [1]", "Network Adapter"]
