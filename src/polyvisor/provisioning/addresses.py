"""The address-wait policy: which guest address counts as usable, and how to say why none did.

:meth:`polyvisor.VM.wait_for_address` asks the backend's sources in order (libvirt: the guest agent, then DHCP
leases, then the host's ARP table; Hyper-V: KVP) until one answers with a usable address. The rules live here so
every backend and the asyncio API share them.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence

from polyvisor.errors import ValidationError
from polyvisor.model import AddressAnswer, GuestAddress

__all__ = ["AddressFamily", "explain", "pick_address", "usable"]


class AddressFamily(enum.StrEnum):
    """Which addresses :meth:`~polyvisor.VM.wait_for_address` accepts."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    ANY = "any"


def usable(address: GuestAddress, family: AddressFamily = AddressFamily.ANY) -> bool:
    """Whether one could reach the guest at ``address``: not loopback, link-local, unspecified or multicast."""
    try:
        ip = ipaddress.ip_address(address.address.split("%", 1)[0])
    except ValueError:
        return False
    if family is AddressFamily.IPV4 and ip.version != 4:
        return False
    if family is AddressFamily.IPV6 and ip.version != 6:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def pick_address(answers: Sequence[AddressAnswer], family: AddressFamily) -> GuestAddress | None:
    """The first usable address in source order, or None."""
    for answer in answers:
        for address in answer.addresses:
            if usable(address, family):
                return address
    return None


def explain(answers: Sequence[AddressAnswer], family: AddressFamily) -> str:
    """One clause per source: what it answered, for a timeout's message ("agent: not connected; lease: ...")."""
    if not answers:
        return "no source was asked"
    parts = []
    for answer in answers:
        if answer.addresses:
            found = ", ".join(a.address for a in answer.addresses)
            parts.append(f"{answer.source}: only {found}, none usable as {family.value}")
        else:
            parts.append(f"{answer.source}: {answer.detail or 'no addresses'}")
    return "; ".join(parts)


def parse_family(family: AddressFamily | str | None) -> AddressFamily:
    """Accept ``"ipv4"``, ``"ipv6"``, ``"any"`` or None (any)."""
    if family is None:
        return AddressFamily.ANY
    try:
        return AddressFamily(family)
    except ValueError:
        raise ValidationError(
            f"{family!r} is not an address family; use 'ipv4', 'ipv6' or 'any'", field="family"
        ) from None
