"""User-mode NICs and their port forwards: what a spec accepts and refuses, and memory://'s semantics."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import polyvisor
from polyvisor import AlreadyExistsError, Feature, NicKind, NicSpec, PortForward, ValidationError, VMSpec


def test_a_forward_reads_from_text_and_tables() -> None:
    assert PortForward.parse("2222:22") == PortForward(2222, 22)
    assert PortForward.parse("127.0.0.2:5353:53/udp") == PortForward(5353, 53, "udp", "127.0.0.2")
    nic = NicSpec(kind="user", forwards=["2222:22", {"host_port": 8080, "guest_port": 80}])  # type: ignore[arg-type]
    assert nic.kind is NicKind.USER
    assert nic.forwards == (PortForward(2222, 22), PortForward(8080, 80))
    assert str(nic.forwards[0]) == "127.0.0.1:2222->22/tcp"


@pytest.mark.parametrize(
    ("nic", "field", "words"),
    [
        ({"kind": "user", "forwards": ["0:22"]}, "nic.forwards[0].host_port", "ports are 1-65535"),
        ({"kind": "user", "forwards": ["2222:65536"]}, "nic.forwards[0].guest_port", "ports are 1-65535"),
        ({"kind": "user", "forwards": [{"host_port": True, "guest_port": 22}]}, "nic.forwards[0].host_port", "integer"),
        ({"kind": "user", "forwards": ["22"]}, "nic.forwards[0]", "HOSTPORT:GUESTPORT"),
        ({"kind": "user", "forwards": ["0.0.0.0:2222:22"]}, "nic.forwards[0].host_address", "not a loopback address"),
        ({"kind": "user", "forwards": ["192.0.2.1:2222:22"]}, "nic.forwards[0].host_address", "bridged network"),
        ({"kind": "user", "forwards": ["::1:2222:22"]}, "nic.forwards[0]", "HOSTPORT:GUESTPORT"),
        ({"kind": "user", "forwards": ["2222:22/sctp"]}, "nic.forwards[0].protocol", "'tcp' or 'udp'"),
        ({"kind": "user", "forwards": ["2222:22", "2222:23"]}, "nic.forwards", "forwarded twice"),
        ({"kind": "user", "forwards": "2222:22"}, "nic.forwards", "must be a list"),
        ({"forwards": ["2222:22"]}, "nic.forwards", "need a user-mode NIC"),
        ({"kind": "user", "network": "default"}, "nic.network", "on no network"),
        ({"kind": "bridge"}, "nic.kind", "network, user"),
    ],
)
def test_bad_nics_are_refused_naming_the_field(nic: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec(name="pv", nics=[nic])
    assert caught.value.field == field
    assert words in str(caught.value)


def test_one_host_port_twice_across_nics_is_refused() -> None:
    nics = [{"kind": "user", "forwards": ["2222:22"]}, {"kind": "user", "forwards": ["2222:80"]}]
    with pytest.raises(ValidationError, match="forwarded twice") as caught:
        VMSpec(name="pv", nics=nics)
    assert caught.value.field == "nics"
    # The same port on another protocol or loopback address is another listener.
    VMSpec(name="pv", nics=[{"kind": "user", "forwards": ["2222:22", "2222:22/udp", "127.0.0.2:2222:22"]}])


@pytest.fixture
def conn() -> Any:
    with polyvisor.connect(f"memory:///usernet-{uuid.uuid4().hex[:8]}") as connection:
        yield connection


def test_memory_declares_user_networking_and_reports_the_forwards(conn: Any) -> None:
    assert conn.capabilities.supports(Feature.USER_NETWORKING)
    vm = conn.create({"name": "a", "nics": [{"kind": "user", "mac": "52:54:00:aa:00:01", "forwards": ["2222:22"]}]})
    assert vm.info().extra["forwards"] == [
        {
            "mac": "52:54:00:aa:00:01",
            "protocol": "tcp",
            "host_address": "127.0.0.1",
            "host_port": 2222,
            "guest_port": 22,
        }
    ]


def test_a_host_port_held_by_a_running_vm_refuses_the_next_start(conn: Any) -> None:
    first = conn.create({"name": "first", "nics": [{"kind": "user", "forwards": ["2222:22"]}]})
    second = conn.create({"name": "second", "nics": [{"kind": "user", "forwards": ["2222:80"]}]})
    first.start()
    with pytest.raises(AlreadyExistsError, match=r"127\.0\.0\.1:2222/tcp is in use \(VM 'first'"):
        second.start()
    assert second.info().state.value == "stopped"
    first.stop()
    second.start()
    assert second.info().state.value == "running"


def test_forwards_belong_to_the_definition_not_to_attach_nic(conn: Any) -> None:
    vm = conn.create({"name": "attach", "nics": []})
    with pytest.raises(ValidationError, match="give them in the spec"):
        vm.attach_nic({"kind": "user", "forwards": ["2222:22"]})
    assert vm.attach_nic({"kind": "user"})


def test_a_backend_without_the_feature_refuses_a_user_nic_before_acting() -> None:
    with polyvisor.connect(f"memory:///usernet-{uuid.uuid4().hex[:8]}?without=user-networking") as conn:
        with pytest.raises(polyvisor.UnsupportedError, match="user-networking"):
            conn.create({"name": "nope", "nics": [{"kind": "user", "forwards": ["2222:22"]}]})
        assert conn.list() == []
        vm = conn.create({"name": "plain", "nics": []})
        with pytest.raises(polyvisor.UnsupportedError, match="user-networking"):
            vm.attach_nic({"kind": "user"})


# -- NAT NICs (nat-forwarding) -------------------------------------------------------------------------------------
def test_a_nat_nics_forwards_listen_on_every_external_address_by_default() -> None:
    nic = NicSpec(kind="nat", forwards=["2222:22", {"host_port": 8080, "guest_port": 80}, "192.0.2.10:53:53/udp"])  # type: ignore[arg-type]
    assert nic.kind is NicKind.NAT
    assert [str(forward) for forward in nic.forwards] == [
        "0.0.0.0:2222->22/tcp",
        "0.0.0.0:8080->80/tcp",
        "192.0.2.10:53->53/udp",
    ]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"nics": [{"kind": "nat", "forwards": ["127.0.0.1:2222:22"]}]}, "nic.forwards[0].host_address", "loopback"),
        ({"nics": [{"kind": "nat", "forwards": ["224.0.0.1:2222:22"]}]}, "nic.forwards[0].host_address", "listen"),
        ({"nics": [{"kind": "nat", "network": "x"}]}, "nic.network", "NAT NIC"),
        ({"nics": [{"kind": "nat", "forwards": ["2222:22", "192.0.2.1:2222:80"]}]}, "nic.forwards", "forwarded twice"),
        ({"nics": [{"kind": "nat"}], "cloud_init": None}, "cloud_init", "give cloud_init"),
        (
            {"nics": [{"kind": "nat"}], "cloud_init": {"network_config": "version: 2"}},
            "cloud_init.network_config",
            "drop",
        ),
    ],
)
def test_bad_nat_nics_are_refused_naming_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VMSpec.from_dict({"name": "pv", "cloud_init": {}, **spec})
    assert caught.value.field == field
    assert words in str(caught.value)


def test_another_address_on_the_same_port_is_another_listener_except_every_address() -> None:
    assert not PortForward(2222, 22, host_address="192.0.2.1").clashes(PortForward(2222, 22, host_address="192.0.2.2"))
    assert PortForward(2222, 22, host_address="0.0.0.0").clashes(PortForward(2222, 80, host_address="192.0.2.2"))
    assert not PortForward(2222, 22, "udp", "0.0.0.0").clashes(PortForward(2222, 22, "tcp", "0.0.0.0"))


def test_memory_maps_nat_forwards_from_creation_to_deletion(conn: Any) -> None:
    assert conn.capabilities.supports(Feature.NAT_FORWARDING)
    first = conn.create({"name": "a", "cloud_init": {}, "nics": [{"kind": "nat", "forwards": ["2222:22"]}]})
    with pytest.raises(AlreadyExistsError, match=r"0\.0\.0\.0:2222/tcp is mapped already \(VM 'a'"):
        conn.create({"name": "b", "cloud_init": {}, "nics": [{"kind": "nat", "forwards": ["2222:80"]}]})
    assert [vm.name for vm in conn.list()] == ["a"]
    first.delete()
    second = conn.create({"name": "b", "cloud_init": {}, "nics": [{"kind": "nat", "forwards": ["2222:80"]}]})
    assert second.info().extra["nat"][0]["address"] == "192.168.213.2"
