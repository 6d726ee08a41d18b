"""NAT NICs on WinNAT over both transports, against the loopback host's NetNat model (docs/hyperv-fidelity.md,
"Networks: the host's NAT (WinNAT)"): a host of its own per test, since the NAT network is the host's."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import AlreadyExistsError, Feature, ValidationError
from polyvisor_hyperv.nat import DEFAULT_PREFIX, NAT_NAME

pytestmark = pytest.mark.loopback


@pytest.fixture
def host(loopback_private: Any) -> Any:
    return loopback_private.engine.host


@pytest.fixture
def nat_conn(
    loopback_private: Any, transport: str, connect: Callable[..., polyvisor.Connection], uri_for: Callable[..., str]
) -> Callable[..., polyvisor.Connection]:
    """``nat_conn(**params)``: a connection over the test's transport to the test's own host."""
    return lambda **params: connect(uri_for(loopback_private, transport, **params))


def _spec(name: str, *forwards: str) -> dict[str, Any]:
    return {"name": name, "cloud_init": {}, "nics": [{"kind": "nat", "forwards": list(forwards)}]}


def _mappings(host: Any) -> list[tuple[str, str, str, int, str, int]]:
    return [
        (m.nat_name, m.protocol, m.external_ip_address, m.external_port, m.internal_ip_address, m.internal_port)
        for m in host.netnat.mappings()
    ]


def _seed_network_config(host: Any, uuid: str) -> dict[str, Any]:
    import pycdlib

    (path,) = [p for p in host.files.paths() if p.lower().endswith(f"{uuid}-cidata.iso".lower())]
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(host.files.get(path).content()))
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path="/network-config")
    iso.close()
    config: dict[str, Any] = json.loads(out.getvalue())
    return config


def _own_state(host: Any) -> tuple[list[str], list[Any], list[Any], list[str]]:
    return (
        sorted(s.name for s in host.network.list_switches()),
        host.netnat.nats(),
        host.netnat.mappings(),
        sorted(vm.name for vm in host.list_vms()),
    )


def test_a_nat_nic_makes_the_hosts_nat_and_maps_its_forwards(host: Any, nat_conn: Any) -> None:
    conn = nat_conn()
    assert conn.supports(Feature.NAT_FORWARDING)
    assert not conn.supports(Feature.USER_NETWORKING)
    vm = conn.create(_spec("pvtest-nat", "2222:22", "5353:53/udp"))
    info = vm.info()
    [nat] = info.extra["nat"]
    assert (nat["address"], nat["prefix_length"], nat["gateway"]) == ("172.31.213.2", 24, "172.31.213.1")
    assert [(n.name, n.internal_prefix) for n in host.netnat.nats()] == [(NAT_NAME, DEFAULT_PREFIX)]
    switch = next(s for s in host.network.list_switches() if s.name == NAT_NAME)
    assert switch.switch_type == "Internal"
    gateways = [(a.ip_address, a.prefix_length) for a in host.netnat.ip_addresses()]
    assert ("172.31.213.1", 24) in gateways
    assert [a.interface_alias for a in host.netnat.ip_addresses() if a.ip_address == "172.31.213.1"] == [
        f"vEthernet ({NAT_NAME})"
    ]
    assert _mappings(host) == [
        (NAT_NAME, "TCP", "0.0.0.0", 2222, "172.31.213.2", 22),
        (NAT_NAME, "UDP", "0.0.0.0", 5353, "172.31.213.2", 53),
    ]
    assert info.extra["forwards"] == [
        {
            "mac": nat["mac"],
            "protocol": proto,
            "host_address": "0.0.0.0",
            "host_port": hp,
            "guest_port": gp,
            "guest_address": "172.31.213.2",
        }
        for proto, hp, gp in (("tcp", 2222, 22), ("udp", 5353, 53))
    ]
    [adapter] = host.get_vm(uuid.UUID(vm.uuid)).config.network_adapters
    assert adapter.switch_name == NAT_NAME
    assert ":".join(adapter.mac[i : i + 2] for i in range(0, 12, 2)).lower() == nat["mac"]
    config = _seed_network_config(host, vm.uuid)
    assert config == {
        "version": 2,
        "ethernets": {
            "nat0": {
                "match": {"macaddress": nat["mac"]},
                "addresses": ["172.31.213.2/24"],
                "routes": [{"to": "0.0.0.0/0", "via": "172.31.213.1"}],
            }
        },
    }
    # The backend's label is no label of the user's, and survives theirs.
    assert info.labels == {}
    vm.set_labels({"env": "test"})
    assert vm.info().labels == {"env": "test"}
    assert vm.info().extra["nat"] == [nat]
    # The next VM reuses the NAT network and takes the next address.
    other = conn.create(_spec("pvtest-nat-b", "2223:22"))
    assert other.info().extra["nat"][0]["address"] == "172.31.213.3"
    assert len(host.netnat.nats()) == 1


def test_delete_removes_the_vms_mappings_and_keeps_the_nat(host: Any, nat_conn: Any) -> None:
    conn = nat_conn()
    first = conn.create(_spec("pvtest-nat-a", "2222:22", "2223:23"))
    second = conn.create(_spec("pvtest-nat-b", "2224:22"))
    first.delete()
    assert _mappings(host) == [(NAT_NAME, "TCP", "0.0.0.0", 2224, "172.31.213.3", 22)]
    assert [n.name for n in host.netnat.nats()] == [NAT_NAME], "the host's NAT network stays"
    second.delete()
    assert _mappings(host) == []
    # The freed address and ports are taken again.
    again = conn.create(_spec("pvtest-nat-c", "2222:22"))
    assert again.info().extra["nat"][0]["address"] == "172.31.213.2"


def _documented_nat(host: Any, prefix: str = "192.168.0.0/24", gateway: str = "192.168.0.1") -> None:
    """A NAT network made by hand, as learn.microsoft.com's setup-nat-network makes it."""
    host.network.new_switch("MyNatSwitch", "Internal")
    host.netnat.new_ip_address(gateway, 24, alias="vEthernet (MyNatSwitch)", index=None)
    host.netnat.new_nat("MyNATnetwork", prefix, None)


def test_the_hosts_own_nat_is_reused_and_another_prefix_refused(host: Any, nat_conn: Any) -> None:
    _documented_nat(host)
    before = _own_state(host)
    with pytest.raises(ValidationError, match=r"192\.168\.0\.0/24") as caught:
        nat_conn(nat_prefix="10.55.0.0/24").create(_spec("pvtest-nat-x", "2222:22"))
    assert caught.value.field == "nat_prefix"
    assert _own_state(host) == before, "nothing was made"
    vm = nat_conn().create(_spec("pvtest-nat", "2222:22"))
    assert vm.info().extra["nat"][0]["address"] == "192.168.0.2"
    assert vm.info().extra["nat"][0]["gateway"] == "192.168.0.1"
    assert _mappings(host) == [("MyNATnetwork", "TCP", "0.0.0.0", 2222, "192.168.0.2", 22)]
    assert NAT_NAME not in {s.name for s in host.network.list_switches()}
    [adapter] = host.get_vm(uuid.UUID(vm.uuid)).config.network_adapters
    assert adapter.switch_name == "MyNatSwitch"


def test_a_port_mapped_already_is_refused_before_anything_is_made(host: Any, nat_conn: Any) -> None:
    _documented_nat(host)
    host.netnat.add_mapping("MyNATnetwork", "TCP", "0.0.0.0", 2222, "192.168.0.50", 22)
    conn = nat_conn()
    holder = conn.create(_spec("pvtest-nat-holder", "8080:80"))
    before = _own_state(host)
    with pytest.raises(AlreadyExistsError, match="no VM of polyvisor's"):
        conn.create(_spec("pvtest-nat-x", "2222:22"))
    with pytest.raises(AlreadyExistsError, match="pvtest-nat-holder"):
        conn.create(_spec("pvtest-nat-y", "3000:3000", "192.0.2.10:8080:80"))
    assert _own_state(host) == before, "nothing was made"
    assert holder.info().extra["nat"][0]["address"] == "192.168.0.2"
    # The address a hand-made mapping points at is taken too.
    assert conn.create(_spec("pvtest-nat-z")).info().extra["nat"][0]["address"] == "192.168.0.3"


def test_a_failed_mapping_rolls_back_the_mappings_vm_and_nat_it_made(
    host: Any, nat_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _own_state(host)
    real = host.netnat.add_mapping
    calls: list[int] = []

    def second_fails(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            from polyvisor_hyperv_loopback.powershell.errors import HostError

            raise HostError(
                "The object already exists.", error_id="Windows System Error 5010", category="ResourceExists"
            )
        return real(*args)

    monkeypatch.setattr(host.netnat, "add_mapping", second_fails)
    with pytest.raises(polyvisor.PolyvisorError, match="already exists"):
        nat_conn().create(_spec("pvtest-nat-fail", "2222:22", "2223:22"))
    assert len(calls) == 2
    assert _own_state(host) == before, "no VM, mapping, NAT or switch is left"
    assert not [p for p in host.files.paths() if p.lower().endswith("-cidata.iso")]
