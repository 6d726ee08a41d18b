"""Networks on libvirt's in-process test driver (NAT and internal ones touch no host here), and the XML they get."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from polyvisor import Connection, Feature, NetworkMode, NetworkSpec, ValidationError
from polyvisor_libvirt.networks import network_mode, network_subnet, network_xml


def test_the_xml_of_each_mode() -> None:
    nat = ET.fromstring(network_xml(NetworkSpec("pvtest-n", NetworkMode.NAT, "10.77.0.0/24")))
    assert nat.find("forward").get("mode") == "nat"  # type: ignore[union-attr]
    ip = nat.find("ip")
    assert ip is not None
    assert (ip.get("address"), ip.get("netmask")) == ("10.77.0.1", "255.255.255.0")
    dhcp = nat.find("ip/dhcp/range")
    assert dhcp is not None
    assert (dhcp.get("start"), dhcp.get("end")) == ("10.77.0.2", "10.77.0.254")
    internal = ET.fromstring(network_xml(NetworkSpec("pvtest-i", NetworkMode.INTERNAL, "10.78.0.0/29")))
    assert internal.find("forward") is None
    assert internal.find("ip") is not None
    isolated = ET.fromstring(network_xml(NetworkSpec("pvtest-o")))
    assert isolated.find("forward") is None
    assert isolated.find("ip") is None
    for root, mode in ((nat, NetworkMode.NAT), (internal, NetworkMode.INTERNAL), (isolated, NetworkMode.ISOLATED)):
        assert network_mode(root) is mode
    assert (network_subnet(nat), network_subnet(internal), network_subnet(isolated)) == (
        "10.77.0.0/24",
        "10.78.0.0/29",
        None,
    )


def test_a_hostile_name_stays_a_name_in_the_xml() -> None:
    name = "pvtest-<name>x<forward mode='nat'>&amp; $(ls)"
    root = ET.fromstring(network_xml(NetworkSpec(name)))
    assert root.findtext("name") == name
    assert root.find("forward") is None


@pytest.mark.parametrize(
    ("xml", "mode"),
    [
        ("<network><forward mode='bridge'/><bridge name='br0'/></network>", NetworkMode.EXTERNAL),
        ("<network><forward mode='route'/><ip address='10.1.0.1' prefix='24'/></network>", None),
        ("<network><forward/><ip address='10.1.0.1' prefix='24'/></network>", NetworkMode.NAT),
    ],
)
def test_modes_read_from_other_networks(xml: str, mode: NetworkMode | None) -> None:
    assert network_mode(ET.fromstring(xml)) is mode


def test_nat_and_internal_networks_on_the_test_driver(conn: Connection) -> None:
    for feature in (Feature.NETWORK_WRITE, Feature.NETWORK_NAT, Feature.NETWORK_INTERNAL, Feature.NETWORK_ADDRESSES):
        assert conn.supports(feature)
    assert not conn.supports(Feature.NETWORK_EXTERNAL)
    nat = conn.create_network("pvtest-nat", NetworkMode.NAT, subnet="10.201.0.0/24")
    assert (nat.mode, nat.subnet, nat.active) == (NetworkMode.NAT, "10.201.0.0/24", True)
    with pytest.raises(ValidationError, match=r"overlaps 10\.201\.0\.0/24"):
        conn.create_network("pvtest-int", NetworkMode.INTERNAL, subnet="10.201.0.128/25")
    with pytest.raises(ValidationError, match=r"overlaps 192\.168\.122\.0/24"):
        conn.create_network("pvtest-int", NetworkMode.INTERNAL, subnet="192.168.0.0/16")  # the driver's default
    internal = conn.create_network("pvtest-int", NetworkMode.INTERNAL, subnet="10.202.0.0/24")
    assert internal.mode is NetworkMode.INTERNAL
    listed = {network.name: network for network in conn.networks()}
    assert listed["pvtest-nat"] == nat
    assert listed["pvtest-int"] == internal
    conn.delete_network("pvtest-nat")
    conn.delete_network("pvtest-int")
    assert sorted(listed) == sorted([*(n.name for n in conn.networks()), "pvtest-nat", "pvtest-int"])
