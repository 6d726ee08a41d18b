"""The in-memory host's interface addresses and WinNAT, as Windows has them (docs/hyperv-fidelity.md, "Networks: the
host's NAT (WinNAT)", names the sources)."""

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


def _nat_network(host: HyperVHost) -> None:
    """The four steps of learn.microsoft.com's setup-nat-network, on 192.168.0.0/24."""
    _run(host, "New-VMSwitch -SwitchName nat-sw -SwitchType Internal")
    _run(host, "New-NetIPAddress -IPAddress 192.168.0.1 -PrefixLength 24 -InterfaceAlias 'vEthernet (nat-sw)'")
    _run(host, "New-NetNat -Name MyNATnetwork -InternalIPInterfaceAddressPrefix 192.168.0.0/24")


def test_the_documented_setup_makes_a_gateway_address_and_one_nat(host: HyperVHost) -> None:
    _nat_network(host)
    (gateway,) = _run(host, "Get-NetIPAddress -InterfaceAlias 'vEthernet (nat-sw)'")
    assert (gateway.IPAddress, gateway.PrefixLength, gateway.AddressFamily) == ("192.168.0.1", 24, "IPv4")  # type: ignore[attr-defined]
    aliases = {str(a.InterfaceAlias) for a in _run(host, "Get-NetIPAddress -AddressFamily IPv4")}  # type: ignore[attr-defined]
    assert aliases == {"Loopback Pseudo-Interface 1", "Ethernet", "vEthernet (nat-sw)"}
    (nat,) = _run(host, "Get-NetNat")
    assert (nat.Name, nat.InternalIPInterfaceAddressPrefix) == ("MyNATnetwork", "192.168.0.0/24")  # type: ignore[attr-defined]
    # One NAT network per host: a second is refused, whatever its prefix.
    assert "parameter is incorrect" in str(
        _fails(host, "New-NetNat -Name other -InternalIPInterfaceAddressPrefix 10.9.0.0/24")
    )
    assert len(_run(host, "Get-NetNat")) == 1


def test_new_netipaddress_takes_an_alias_or_an_index_and_no_address_twice(host: HyperVHost) -> None:
    _run(host, "New-VMSwitch -SwitchName nat-sw -SwitchType Internal")
    assert "cannot be resolved" in str(
        _fails(
            host, "New-NetIPAddress 10.1.0.1 -PrefixLength 24 -InterfaceAlias 'vEthernet (nat-sw)' -InterfaceIndex 4"
        )
    )
    assert "missing mandatory" in str(_fails(host, "New-NetIPAddress 10.1.0.1 -PrefixLength 24"))
    assert "No MSFT_NetIPInterface" in str(
        _fails(host, "New-NetIPAddress 10.1.0.1 -PrefixLength 24 -InterfaceAlias 'vEthernet (none)'")
    )
    (made,) = _run(host, "New-NetIPAddress 10.1.0.1 -PrefixLength 24 -InterfaceAlias 'vEthernet (nat-sw)'")
    index = made.InterfaceIndex  # type: ignore[attr-defined]
    assert "already exists" in str(_fails(host, f"New-NetIPAddress 10.1.0.1 -PrefixLength 24 -InterfaceIndex {index}"))
    # The address goes with the switch's host adapter.
    _run(host, "Remove-VMSwitch nat-sw -Force")
    assert "No matching MSFT_NetIPAddress" in str(_fails(host, "Get-NetIPAddress -IPAddress 10.1.0.1"))


def test_static_mappings_are_numbered_and_refused_twice(host: HyperVHost) -> None:
    _nat_network(host)
    add = (
        "Add-NetNatStaticMapping -NatName MyNATnetwork -Protocol {proto} -ExternalIPAddress {ext} -ExternalPort {port}"
        " -InternalIPAddress 192.168.0.2 -InternalPort 22"
    )
    (first,) = _run(host, add.format(proto="TCP", ext="0.0.0.0", port=2222))
    assert (first.StaticMappingID, first.Protocol, first.InternalPort) == (0, "TCP", 22)  # type: ignore[attr-defined]
    (udp,) = _run(host, add.format(proto="udp", ext="0.0.0.0", port=2222))
    assert (udp.StaticMappingID, udp.Protocol) == (1, "UDP")  # type: ignore[attr-defined]
    for ext in ("0.0.0.0", "192.0.2.10"):
        assert "already exists" in str(_fails(host, add.format(proto="TCP", ext=ext, port=2222)))
    assert "SCTP" in str(_fails(host, add.format(proto="SCTP", ext="0.0.0.0", port=2223)))
    assert "No MSFT_NetNat" in str(
        _fails(host, add.replace("MyNATnetwork", "nope").format(proto="TCP", ext="0.0.0.0", port=1))
    )
    assert "missing mandatory" in str(
        _fails(host, "Add-NetNatStaticMapping MyNATnetwork -Protocol TCP -ExternalPort 1")
    )
    # -InternalPort defaults to the external port.
    (same,) = _run(
        host,
        "Add-NetNatStaticMapping MyNATnetwork -Protocol TCP -ExternalIPAddress 0.0.0.0 "
        "-ExternalPort 8080 -InternalIPAddress 192.168.0.3",
    )
    assert same.InternalPort == 8080  # type: ignore[attr-defined]
    assert [m.StaticMappingID for m in _run(host, "Get-NetNatStaticMapping -NatName MyNATnetwork")] == [0, 1, 2]  # type: ignore[attr-defined]


def test_removals_ask_to_confirm_and_take_ids_names_or_the_pipeline(host: HyperVHost) -> None:
    _nat_network(host)
    for port, protocol in ((1, "TCP"), (2, "UDP"), (3, "TCP")):
        _run(
            host,
            f"Add-NetNatStaticMapping MyNATnetwork -Protocol {protocol} -ExternalIPAddress 0.0.0.0 "
            f"-ExternalPort {port} -InternalIPAddress 192.168.0.2",
        )
    assert "NonInteractive" in str(_fails(host, "Remove-NetNatStaticMapping -NatName MyNATnetwork -StaticMappingID 0"))
    _run(host, "Remove-NetNatStaticMapping -NatName MyNATnetwork -StaticMappingID 0 -Confirm:$false")
    assert [m.ExternalPort for m in _run(host, "Get-NetNatStaticMapping")] == [2, 3]  # type: ignore[attr-defined]
    (udp,) = _run(host, "Remove-NetNatStaticMapping MyNATnetwork -StaticMappingID 1 -Confirm:$false -PassThru")
    assert udp.Protocol == "UDP"  # type: ignore[attr-defined]
    _run(host, "Get-NetNatStaticMapping -NatName MyNATnetwork | Remove-NetNatStaticMapping -Confirm:$false")
    assert _run(host, "Get-NetNatStaticMapping") == []
    _run(
        host,
        "Add-NetNatStaticMapping MyNATnetwork -Protocol TCP -ExternalIPAddress 0.0.0.0 -ExternalPort 3 "
        "-InternalIPAddress 192.168.0.2",
    )
    assert "NonInteractive" in str(_fails(host, "Remove-NetNat -Name MyNATnetwork"))
    _run(host, "Get-NetNat | Remove-NetNat -Confirm:$false")
    assert _run(host, "Get-NetNat") == []
    assert _run(host, "Get-NetNatStaticMapping") == [], "the NAT's mappings went with it"
    # The switch and its gateway address stay (setup-nat-network: "this will remove the NAT but keep the internal
    # vSwitch").
    assert [str(a.IPAddress) for a in _run(host, "Get-NetIPAddress -InterfaceAlias 'vEthernet (nat-sw)'")] == [
        "192.168.0.1"
    ]  # type: ignore[attr-defined]
    _run(host, "New-NetNat -Name again -InternalIPInterfaceAddressPrefix 192.168.0.0/24")
