"""Networks and virtual switches: listed as values, made and deleted by mode, refused before acting, kept while a
VM is on one.

Each case runs where its capability is declared (``networks``, ``network-write``, ``network-isolated``,
``network-internal``, ``network-nat``, ``network-external``, ``network-addresses``). Only isolated networks are
made unless the run gives ``--polyvisor-subnet`` (internal and NAT networks, which the host takes part in) or
``--polyvisor-adapter`` (an external one). Names are under the kit's prefix; everything made is deleted again, also
when a case fails.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polyvisor import (
    VM,
    AlreadyExistsError,
    Connection,
    Feature,
    InUseError,
    NetworkMode,
    NotFoundError,
    PolyvisorError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.networks import MODE_FEATURES, validate_network_name
from polyvisor.testing.fixtures import NAME_PREFIX, remove_vm
from polyvisor.testing.suite._support import require

VMFactory = Callable[..., VM]


def _name(tag: str = "net") -> str:
    return f"{NAME_PREFIX}{tag}-{uuid.uuid4().hex[:8]}"


def _valid(name: str) -> bool:
    try:
        validate_network_name(name)
    except ValidationError:
        return False
    return True


def _names(conn: Connection) -> list[str]:
    return sorted(network.name for network in conn.networks())


@pytest.fixture
def networks_made(polyvisor_connection: Connection) -> Iterator[list[str]]:
    """Names of networks to delete after the test, whatever happened (kit VMs still on one go first)."""
    names: list[str] = []
    yield names
    conn = polyvisor_connection
    if not conn.supports(Feature.NETWORK_WRITE):
        return
    present = set(_names(conn))
    for name in names:
        if name not in present:
            continue
        try:
            conn.delete_network(name)
        except InUseError as error:
            for user in error.users:
                if user.startswith(NAME_PREFIX):
                    remove_vm(conn, conn.vm(user))
            conn.delete_network(name)


def _make(conn: Connection, made: list[str], mode: NetworkMode, **options: Any) -> Any:
    name = _name(mode.value)
    made.append(name)
    return conn.create_network(name, mode, **options)


def test_networks_are_values(polyvisor_connection: Connection) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS)
    networks = conn.networks()
    names = [network.name for network in networks]
    assert len(names) == len(set(names))
    for network in networks:
        assert network.kind
        assert network.mode is None or isinstance(network.mode, NetworkMode)
        if network.subnet is not None:
            ipaddress.IPv4Network(network.subnet)


def test_an_isolated_network_is_made_used_refused_and_deleted(
    polyvisor_connection: Connection, networks_made: list[str], polyvisor_vm_factory: VMFactory
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS, Feature.NETWORK_WRITE, Feature.NETWORK_ISOLATED)
    made = _make(conn, networks_made, NetworkMode.ISOLATED)
    assert (made.mode, made.subnet, made.active) == (NetworkMode.ISOLATED, None, True)
    listed = {network.name: network for network in conn.networks()}
    assert listed[made.name] == made
    if conn.supports(Feature.CREATE):
        vm = polyvisor_vm_factory("net", nics=[{"network": made.name}])
        with pytest.raises(InUseError) as refused:
            conn.delete_network(made.name)
        assert refused.value.users == (vm.seen_name,)
        assert vm.seen_name in str(refused.value)
        assert made.name in _names(conn), "a refused delete deletes nothing"
        remove_vm(conn, vm)
    conn.delete_network(made.name)
    assert made.name not in _names(conn)
    with pytest.raises(NotFoundError):
        conn.delete_network(made.name)


BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("a wildcard", {"name": f"{NAME_PREFIX}*"}),
    ("a bracket", {"name": f"{NAME_PREFIX}[x]"}),
    ("an empty name", {"name": ""}),
    ("a path separator", {"name": f"{NAME_PREFIX}a/b"}),
    ("a newline", {"name": f"{NAME_PREFIX}a\nb"}),
    ("too long", {"name": NAME_PREFIX + "x" * 80}),
    ("an unknown mode", {"mode": "bridged"}),
    ("a subnet on an isolated network", {"subnet": "10.77.0.0/24"}),
    ("an adapter on an isolated network", {"adapter": "eth0"}),
    ("an external network without adapter", {"mode": NetworkMode.EXTERNAL}),
    ("host bits", {"mode": NetworkMode.NAT, "subnet": "10.77.0.1/24"}),
    ("no prefix", {"mode": NetworkMode.NAT, "subnet": "10.77.0.0"}),
    ("a public range", {"mode": NetworkMode.NAT, "subnet": "8.8.8.0/24"}),
    ("IPv6", {"mode": NetworkMode.NAT, "subnet": "fd00::/64"}),
    ("too narrow", {"mode": NetworkMode.NAT, "subnet": "10.77.0.0/30"}),
    ("not an address", {"mode": NetworkMode.NAT, "subnet": "ten/24"}),
]


@pytest.mark.parametrize(("what", "request_"), BAD_REQUESTS, ids=[what for what, _ in BAD_REQUESTS])
def test_bad_requests_are_refused_before_acting(
    polyvisor_connection: Connection, networks_made: list[str], what: str, request_: dict[str, Any]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS, Feature.NETWORK_WRITE)
    before = _names(conn)
    arguments = {"name": _name("bad"), **request_}
    networks_made.append(arguments["name"])
    with pytest.raises(ValidationError):
        conn.create_network(**arguments)
    assert _names(conn) == before, f"{what}: nothing is made"


def test_a_taken_name_and_an_undeclared_mode_are_refused(
    polyvisor_connection: Connection, networks_made: list[str]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS, Feature.NETWORK_WRITE)
    before = _names(conn)
    takeable = [name for name in before if _valid(name)]
    if takeable:
        with pytest.raises(AlreadyExistsError):  # names that differ only in case are one name on Hyper-V
            conn.create_network(takeable[0].swapcase())
    for mode, feature in MODE_FEATURES.items():
        if conn.supports(feature):
            continue
        name = _name(mode.value)
        networks_made.append(name)
        with pytest.raises(UnsupportedError) as refused:
            conn.create_network(name, mode, adapter="eth0" if mode is NetworkMode.EXTERNAL else None)
        assert refused.value.feature is feature
    assert _names(conn) == before
    with pytest.raises(NotFoundError):
        conn.delete_network(_name("missing"))


def test_internal_and_nat_networks_take_their_range(
    polyvisor_connection: Connection, networks_made: list[str], polyvisor_subnet: ipaddress.IPv4Network | None
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS, Feature.NETWORK_WRITE)
    modes = [mode for mode in (NetworkMode.INTERNAL, NetworkMode.NAT) if conn.supports(MODE_FEATURES[mode])]
    if not modes:
        pytest.skip("capability not declared: network-internal, network-nat")
    if polyvisor_subnet is None:
        pytest.skip("the kit may make no network the host takes part in here (--polyvisor-subnet)")
    addresses = conn.supports(Feature.NETWORK_ADDRESSES)
    ranges = list(polyvisor_subnet.subnets(new_prefix=min(polyvisor_subnet.prefixlen + 2, 29)))
    for index, mode in enumerate(modes):
        subnet = str(ranges[index]) if addresses else None
        if addresses:
            with pytest.raises(ValidationError, match="subnet"):
                conn.create_network(_name(mode.value), mode)
        made = _make(conn, networks_made, mode, subnet=subnet)
        assert (made.mode, made.subnet) == (mode, subnet)
        if addresses:
            overlapping = str(ipaddress.IPv4Network(subnet).supernet())
            with pytest.raises(ValidationError, match="overlaps"):
                conn.create_network(_name("overlap"), mode, subnet=overlapping)
        conn.delete_network(made.name)
        assert made.name not in _names(conn)


def test_an_external_network_is_bound_to_an_adapter(
    polyvisor_connection: Connection, networks_made: list[str], polyvisor_adapter: str | None
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.NETWORKS, Feature.NETWORK_WRITE, Feature.NETWORK_EXTERNAL)
    if polyvisor_adapter is None:
        pytest.skip("no host adapter for an external network (--polyvisor-adapter)")
    made = _make(conn, networks_made, NetworkMode.EXTERNAL, adapter=polyvisor_adapter)
    assert made.mode is NetworkMode.EXTERNAL
    with pytest.raises(PolyvisorError):  # InUseError: one external network per adapter
        _make(conn, networks_made, NetworkMode.EXTERNAL, adapter=polyvisor_adapter)
    with pytest.raises(NotFoundError):
        _make(conn, networks_made, NetworkMode.EXTERNAL, adapter=f"{NAME_PREFIX}no-such-adapter")
    conn.delete_network(made.name)
    assert made.name not in _names(conn)
