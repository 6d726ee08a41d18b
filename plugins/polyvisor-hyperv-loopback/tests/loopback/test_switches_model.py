"""The in-memory host's virtual switches and physical adapters, as Windows has them (docs/hyperv-fidelity.md,
"Networks: virtual switches", names the sources)."""

from __future__ import annotations

import io

import pytest

from polyvisor_hyperv_loopback.cmdlets import Session, default_registry
from polyvisor_hyperv_loopback.hyperv import HyperVHost
from polyvisor_hyperv_loopback.powershell.errors import PipelineStopped, PSErrorRecord
from polyvisor_hyperv_loopback.powershell.interpreter import Console, Interpreter


@pytest.fixture
def host() -> HyperVHost:
    return HyperVHost(transition_delay=0, kvp_delay=0)


def _run(host: HyperVHost, script: str) -> list[object]:
    return Interpreter(Session(host), default_registry(), Console(io.BytesIO(), io.StringIO())).run(script)


def _fails(host: HyperVHost, script: str) -> PSErrorRecord:
    with pytest.raises(PipelineStopped) as info:
        _run(host, "$ErrorActionPreference = 'Stop'; " + script)
    return info.value.record


def _names(host: HyperVHost) -> list[str]:
    return [str(s.Name) for s in _run(host, "Get-VMSwitch")]  # type: ignore[attr-defined]


def test_new_vmswitch_makes_internal_private_and_external_switches(host: HyperVHost) -> None:
    (internal,) = _run(host, "New-VMSwitch -Name 'pv int' -SwitchType Internal")
    (private,) = _run(host, "New-VMSwitch 'pv priv' -SwitchType Private -Notes 'n'")
    (external,) = _run(host, "New-VMSwitch -Name 'pv ext' -NetAdapterName 'Ethernet'")
    assert internal.SwitchType.name == "Internal"  # type: ignore[attr-defined]
    assert internal.AllowManagementOS is True  # type: ignore[attr-defined]
    assert private.SwitchType.name == "Private"  # type: ignore[attr-defined]
    assert private.AllowManagementOS is False  # type: ignore[attr-defined]
    assert external.SwitchType.name == "External"  # type: ignore[attr-defined]
    assert external.AllowManagementOS is True, "AllowManagementOS defaults to true"  # type: ignore[attr-defined]
    assert external.NetAdapterInterfaceDescription == "Contoso 12345 Gigabit Network Device"  # type: ignore[attr-defined]
    (listed,) = _run(host, f"Get-VMSwitch -Id '{external.Id}'")  # type: ignore[attr-defined]
    assert listed.Name == "pv ext"  # type: ignore[attr-defined]


def test_parameter_sets_and_the_bound_adapter_are_enforced(host: HyperVHost) -> None:
    assert "cannot be resolved" in str(_fails(host, "New-VMSwitch x -SwitchType Internal -NetAdapterName Ethernet"))
    assert "cannot be resolved" in str(_fails(host, "New-VMSwitch x -SwitchType Private -AllowManagementOS $false"))
    assert "cannot be resolved" in str(_fails(host, "New-VMSwitch x"))
    assert "External" in _fails(host, "New-VMSwitch x -SwitchType External").message
    assert "No MSFT_NetAdapter" in str(_fails(host, "New-VMSwitch x -NetAdapterName 'Wi-Fi'"))
    _run(host, "New-VMSwitch first -NetAdapterName Ethernet -AllowManagementOS $false")
    assert "already bound" in str(_fails(host, "New-VMSwitch second -NetAdapterName Ethernet"))
    assert "second" not in _names(host)


def test_get_netadapter_lists_physical_and_host_virtual_adapters(host: HyperVHost) -> None:
    physical = _run(host, "Get-NetAdapter -Physical")
    assert [(a.Name, a.InterfaceDescription) for a in physical] == [  # type: ignore[attr-defined]
        ("Ethernet", "Contoso 12345 Gigabit Network Device")
    ]
    _run(host, "New-VMSwitch lab -SwitchType Internal; New-VMSwitch quiet -SwitchType Private")
    every = [str(a.Name) for a in _run(host, "Get-NetAdapter")]  # type: ignore[attr-defined]
    assert "vEthernet (lab)" in every
    assert "vEthernet (quiet)" not in every, "a private switch gives the host no adapter"
    assert "No MSFT_NetAdapter" in str(_fails(host, "Get-NetAdapter -Name nope"))


def test_remove_vmswitch_needs_force_reads_wildcards_and_takes_the_pipeline(host: HyperVHost) -> None:
    _run(host, "New-VMSwitch lab-a -SwitchType Private; New-VMSwitch lab-b -SwitchType Private")
    assert "NonInteractive" in _fails(host, "Remove-VMSwitch lab-a").message, "ShouldContinue needs -Force"
    assert "lab-a" in _names(host)
    _run(host, "Get-VMSwitch -Name lab-a | Remove-VMSwitch -Force")
    assert "lab-a" not in _names(host)
    _run(host, "New-VMSwitch lab-c -SwitchType Private")
    _run(host, "Remove-VMSwitch 'lab-*' -Force")
    assert [n for n in _names(host) if n.startswith("lab")] == []
    assert "unable to find a virtual switch" in str(_fails(host, "Remove-VMSwitch gone -Force"))
