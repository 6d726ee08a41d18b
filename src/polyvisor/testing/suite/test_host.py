"""Host facts and networks."""

from __future__ import annotations

from polyvisor import Connection, Feature
from polyvisor.testing.suite._support import require


def test_host_info(polyvisor_connection: Connection) -> None:
    info = polyvisor_connection.host_info()
    assert info.hostname
    assert info.hypervisor
    assert info.cpus >= 1
    assert info.memory_mib >= 1
    assert info.arch


def test_networks(polyvisor_connection: Connection) -> None:
    require(polyvisor_connection, Feature.NETWORKS)
    networks = polyvisor_connection.networks()
    names = [net.name for net in networks]
    assert len(names) == len(set(names))
    assert all(net.kind for net in networks)
