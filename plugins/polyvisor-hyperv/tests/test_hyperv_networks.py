"""Networks on Hyper-V (issue 16), over both transports against the loopback host: Private, Internal and External
switches made and deleted through the one network model, a switch a VM is on refused naming it, an adapter that
is missing or taken refused before New-VMSwitch runs, names that are wildcards to the switch cmdlets refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, InUseError, NetworkMode, NotFoundError, UnsupportedError, ValidationError


def _name(tag: str) -> str:
    return f"pvtest-{tag}-{uuid.uuid4().hex[:8]}"


def _switches(loopback: Any) -> dict[str, Any]:
    return {switch.name: switch for switch in loopback.engine.host.network.list_switches()}


def test_capabilities_declare_the_switch_types_hyperv_has(conn: polyvisor.Connection) -> None:
    declared = (Feature.NETWORK_WRITE, Feature.NETWORK_ISOLATED, Feature.NETWORK_INTERNAL, Feature.NETWORK_EXTERNAL)
    for feature in declared:
        assert conn.supports(feature)
    assert not conn.supports(Feature.NETWORK_NAT)
    assert not conn.supports(Feature.NETWORK_ADDRESSES)
    with pytest.raises(UnsupportedError) as nat:
        conn.create_network(_name("nat"), NetworkMode.NAT, subnet="10.77.0.0/24")
    assert nat.value.feature is Feature.NETWORK_NAT
    with pytest.raises(UnsupportedError) as addressed:
        conn.create_network(_name("int"), NetworkMode.INTERNAL, subnet="10.77.0.0/24")
    assert addressed.value.feature is Feature.NETWORK_ADDRESSES


def test_private_internal_and_external_switches(conn: polyvisor.Connection, loopback_http: Any) -> None:
    names = {mode: _name(mode.value) for mode in (NetworkMode.ISOLATED, NetworkMode.INTERNAL, NetworkMode.EXTERNAL)}
    try:
        isolated = conn.create_network(names[NetworkMode.ISOLATED])
        internal = conn.create_network(names[NetworkMode.INTERNAL], NetworkMode.INTERNAL)
        external = conn.create_network(names[NetworkMode.EXTERNAL], NetworkMode.EXTERNAL, adapter="ethernet")
        assert (isolated.kind, isolated.mode) == ("private", NetworkMode.ISOLATED)
        assert (internal.kind, internal.mode) == ("internal", NetworkMode.INTERNAL)
        assert (external.kind, external.mode) == ("external", NetworkMode.EXTERNAL)
        assert external.extra["adapter"] == "Contoso 12345 Gigabit Network Device"
        assert external.extra["allow_management_os"] is True, "an external switch never cuts the host off"
        on_host = _switches(loopback_http)
        assert {on_host[name].switch_type for name in names.values()} == {"Private", "Internal", "External"}
        listed = {network.name: network for network in conn.networks()}
        assert listed[isolated.name] == isolated
        assert listed[external.name] == external

        with pytest.raises(InUseError, match="already bound"):
            conn.create_network(_name("ext2"), NetworkMode.EXTERNAL, adapter="Ethernet")
        with pytest.raises(NotFoundError, match="adapters: Ethernet"):
            conn.create_network(_name("ext3"), NetworkMode.EXTERNAL, adapter="Wi-Fi")
        assert len(_switches(loopback_http)) == len(on_host), "a refused create makes nothing"
    finally:
        for name in names.values():
            if name in _switches(loopback_http):
                conn.delete_network(name)
    assert not set(names.values()) & set(_switches(loopback_http))


def test_a_switch_a_vm_is_on_is_not_deleted(conn: polyvisor.Connection, loopback_http: Any, vm_name: str) -> None:
    name = _name("used")
    conn.create_network(name)
    try:
        vm = conn.create({"name": vm_name, "cpus": 1, "memory_mib": 512, "nics": [{"network": name}]})
        try:
            with pytest.raises(InUseError) as refused:
                conn.delete_network(name)
            assert refused.value.users == (vm_name,)
            assert vm_name in str(refused.value)
            assert name in _switches(loopback_http)
        finally:
            vm.delete()
        conn.delete_network(name)
    finally:
        if name in _switches(loopback_http):
            loopback_http.engine.host.network.remove_switch(_switches(loopback_http)[name].id)
    assert name not in _switches(loopback_http)


def test_names_the_switch_cmdlets_would_read_as_wildcards_are_refused(
    conn: polyvisor.Connection, loopback_http: Any
) -> None:
    before = set(_switches(loopback_http))
    for bad in ("pvtest-*", "pvtest-[ab]", "pvtest-?"):
        with pytest.raises(ValidationError, match="wildcard"):
            conn.create_network(bad)
    hostile = _name("$(Stop-Computer -Force) ; & 'q'")
    made = conn.create_network(hostile)
    try:
        assert made.name == hostile
        assert hostile in _switches(loopback_http)
    finally:
        conn.delete_network(hostile)
    assert set(_switches(loopback_http)) == before
