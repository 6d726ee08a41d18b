"""NAT NICs (capability ``nat-forwarding``): the static address a backend chooses, and the seed that carries it.

A NAT such as Windows' WinNAT translates a guest's traffic but hands out no address, so the backend picks a free one
in the NAT's prefix (:func:`pick_address`) and the guest learns it from its NoCloud seed: a network config of
version 2 whose ethernet is matched by the NIC's MAC (:func:`network_config`). The same value, reported by
``info().extra["nat"]`` (:meth:`NatAddress.fact`), tells a caller where the host itself reaches the guest.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from polyvisor.errors import PolyvisorError
from polyvisor.model import CloudInit

__all__ = ["NatAddress", "network_config", "pick_address", "with_nat_addresses"]


@dataclass(frozen=True, slots=True)
class NatAddress:
    """A NAT NIC's static address: the NIC's MAC, its address and prefix length, and the NAT's gateway."""

    mac: str
    address: str
    prefix_length: int
    gateway: str

    def fact(self) -> dict[str, Any]:
        """This address as an entry of ``info().extra["nat"]`` (the same on every backend)."""
        return {
            "mac": self.mac,
            "address": self.address,
            "prefix_length": self.prefix_length,
            "gateway": self.gateway,
        }


def pick_address(prefix: str, taken: Collection[str], *, host: str, vm: str) -> str:
    """The lowest address of ``prefix`` that is neither its network nor broadcast address nor ``taken`` (the
    gateway's and every other guest's); raise PolyvisorError when none is left."""
    network = ipaddress.IPv4Network(prefix)
    used = {ipaddress.IPv4Address(address) for address in taken}
    for address in network.hosts():
        if address not in used:
            return str(address)
    raise PolyvisorError(
        f"the NAT network {prefix} has no free address left for another guest ({len(used)} in use); delete a VM "
        "with a NAT NIC or widen the NAT's prefix",
        host=host,
        vm=vm,
    )


def network_config(addresses: Sequence[NatAddress]) -> dict[str, Any]:
    """A network config (version 2) giving each NAT NIC, matched by its MAC, its static address and the default
    route through the NAT's gateway."""
    ethernets: dict[str, Any] = {}
    for index, nat in enumerate(addresses):
        ethernets[f"nat{index}"] = {
            "match": {"macaddress": nat.mac},
            "addresses": [f"{nat.address}/{nat.prefix_length}"],
            "routes": [{"to": "0.0.0.0/0", "via": nat.gateway}],
        }
    return {"version": 2, "ethernets": ethernets}


def with_nat_addresses(cloud_init: CloudInit, addresses: Sequence[NatAddress]) -> CloudInit:
    """The seed's data with polyvisor's network config for these NAT NICs (VMSpec refuses one of the user's own)."""
    if not addresses:
        return cloud_init
    return dataclasses.replace(cloud_init, network_config=network_config(addresses))
