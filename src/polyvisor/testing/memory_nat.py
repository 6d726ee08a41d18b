"""memory://'s NAT NICs (``nat-forwarding``), with the semantics of the Hyper-V backend's WinNAT.

The host has one NAT network, :data:`PREFIX` with its gateway first. A VM's NAT NICs get the lowest free addresses
when it is created, and its forwards are the host's static mappings from then until it is deleted, whether it runs
or not: a host port another VM maps refuses the create, before anything is made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from polyvisor.errors import AlreadyExistsError
from polyvisor.model import NicKind, NicSpec, PortForward
from polyvisor.provisioning.nat import NatAddress, pick_address

__all__ = ["PREFIX", "NatForward", "NatPlan", "plan_nat"]

PREFIX = "192.168.213.0/24"
"""The memory host's NAT network."""
GATEWAY = str(next(ipaddress.IPv4Network(PREFIX).hosts()))


@dataclass(frozen=True, slots=True)
class NatForward:
    """One static mapping: a NAT NIC's forward and the guest address it reaches."""

    mac: str
    forward: PortForward
    guest_address: str


@dataclass(frozen=True, slots=True)
class NatPlan:
    """A new VM's NAT addresses and mappings."""

    addresses: tuple[NatAddress, ...] = ()
    forwards: tuple[NatForward, ...] = ()


class _Holder(Protocol):
    """What plan_nat reads of another VM (memory's _VM has these)."""

    name: str
    nat: NatPlan


def plan_nat(nics: Sequence[NicSpec], macs: Sequence[str], others: Iterable[_Holder], *, host: str, vm: str) -> NatPlan:
    """Choose the addresses of the VM's NAT NICs and check its forwards against every mapping the host has."""
    pairs = [(nic, mac) for nic, mac in zip(nics, macs, strict=True) if nic.kind is NicKind.NAT]
    if not pairs:
        return NatPlan()
    others = list(others)
    taken = {GATEWAY, *(address.address for other in others for address in other.nat.addresses)}
    prefix_length = ipaddress.IPv4Network(PREFIX).prefixlen
    addresses: list[NatAddress] = []
    forwards: list[NatForward] = []
    for nic, mac in pairs:
        address = pick_address(PREFIX, taken, host=host, vm=vm)
        taken.add(address)
        addresses.append(NatAddress(mac, address, prefix_length, GATEWAY))
        for forward in nic.forwards:
            for other in others:
                if any(held.forward.clashes(forward) for held in other.nat.forwards):
                    raise AlreadyExistsError(
                        f"host port {forward.host_address}:{forward.host_port}/{forward.protocol} is mapped already "
                        f"(VM {other.name!r} forwards it through the NAT); give this VM another host port",
                        host=host,
                        vm=vm,
                    )
            forwards.append(NatForward(mac, forward, address))
    return NatPlan(tuple(addresses), tuple(forwards))
