"""Networks against libvirtd's real network driver (``qemu:///system``): an isolated network made, listed, used by
a VM (so refused on delete, naming it), deleted; a create cut short leaves nothing.

Only isolated networks (no host address, no forward) are made here, each named ``pvtest-net-<hex>``, and removed
afterwards with raw libvirt whatever the test did; libvirt's ``default`` network is never started. NAT and internal
networks are tested on libvirt's test driver (tests/test_networks.py), which runs no dnsmasq and touches no host
interface.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import libvirt
import pytest

import polyvisor
from polyvisor import Connection, InUseError, NetworkMode, NotFoundError
from polyvisor.backend import Deadline

pytestmark = pytest.mark.libvirtd

URI = "qemu:///system"


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    """One connection for the module (opening one probes the host for seconds)."""
    with polyvisor.connect(URI) as connection:
        yield connection


def _remove(name: str) -> None:
    """Remove the domains named like ``name`` and the network ``name`` (raw libvirt, whatever state they are in)."""
    raw = libvirt.open(URI)
    try:
        for dom in raw.listAllDomains(0):
            if dom.name().startswith(name):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        try:
            net = raw.networkLookupByName(name)
        except libvirt.libvirtError:
            return
        with contextlib.suppress(libvirt.libvirtError):
            net.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            net.undefine()
    finally:
        raw.close()


@pytest.fixture
def network_name() -> Iterator[str]:
    name = f"pvtest-net-{uuid.uuid4().hex[:8]}"
    yield name
    _remove(name)


def test_an_isolated_network_is_made_used_refused_and_deleted(conn: Connection, network_name: str) -> None:
    made = conn.create_network(network_name, NetworkMode.ISOLATED)
    assert (made.name, made.mode, made.subnet, made.active) == (network_name, NetworkMode.ISOLATED, None, True)
    assert made.extra["autostart"] is True
    assert str(made.extra["bridge"]).startswith("virbr"), "libvirt picks a bridge of its own"
    raw = libvirt.open(URI)
    try:
        xml = raw.networkLookupByName(network_name).XMLDesc(0)
        assert "<forward" not in xml, "isolated: no forward"
        assert "<ip" not in xml, "isolated: no host address"
        assert not raw.networkLookupByName("default").isActive(), "the default NAT network stays stopped"
    finally:
        raw.close()
    assert network_name in [n.name for n in conn.networks()]

    vm = conn.create({"name": f"{network_name}-vm", "cpus": 1, "memory_mib": 64, "nics": [{"network": network_name}]})
    with pytest.raises(InUseError) as refused:
        conn.delete_network(network_name)
    assert refused.value.users == (f"{network_name}-vm",)
    assert f"{network_name}-vm" in str(refused.value)
    assert network_name in [n.name for n in conn.networks()], "a refused delete deletes nothing"

    vm.delete()
    conn.delete_network(network_name)
    assert network_name not in [n.name for n in conn.networks()]
    with pytest.raises(NotFoundError):
        conn.delete_network(network_name)


def test_a_create_cut_short_after_the_define_leaves_nothing(conn: Connection, network_name: str) -> None:
    # A deadline that has passed once the network is defined: the backend must undefine it again.
    with pytest.raises(polyvisor.TimeoutError):
        conn.backend.create_network(polyvisor.NetworkSpec(network_name), Deadline(0.0))
    raw = libvirt.open(URI)
    try:
        assert network_name not in [net.name() for net in raw.listAllNetworks()]
    finally:
        raw.close()
