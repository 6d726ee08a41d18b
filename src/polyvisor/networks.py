"""Networks and virtual switches as one model: what a new one is (:class:`NetworkSpec`), checked once for every backend.

A libvirt network and a Hyper-V virtual switch are the same thing to a VM: what its NIC is plugged into. They
differ in who else is on it, which is the :class:`~polyvisor.model.NetworkMode`:

=============  ==========================================  ===================================  =================
mode           who reaches whom                            libvirt                              Hyper-V
=============  ==========================================  ===================================  =================
``isolated``   the VMs on it, one another only             no ``<forward>``, no host address    Private switch
``internal``   the VMs and the host                        no ``<forward>``, host address+DHCP  Internal switch
``nat``        the VMs, the host, and beyond through NAT   ``<forward mode='nat'>`` + DHCP      (none)
``external``   the VMs, on a host adapter's own network    (none)                               External switch
=============  ==========================================  ===================================  =================

Each mode is a capability (``network-isolated``, ``network-internal``, ``network-nat``, ``network-external``), and so
is an address range (``network-addresses``: the host takes the subnet's first address and hands out the rest by
DHCP, as libvirt does; Hyper-V has no DHCP server, so it declares none). Where ``network-addresses`` is declared, an
``internal`` or ``nat`` network needs a ``subnet``; an ``isolated`` or ``external`` one never takes one, since the
host has no address on it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from polyvisor.errors import ValidationError
from polyvisor.model import Feature, NetworkMode, validate_name

__all__ = [
    "MODE_FEATURES",
    "AddressPlan",
    "NetworkSpec",
    "parse_mode",
    "validate_network_name",
]

# Get-VMSwitch and Remove-VMSwitch read their -Name as a wildcard pattern, so a name holding one would match others.
_WILDCARD = re.compile(r"[*?\[\]]")
MAX_NETWORK_NAME = 64
"""Longest network name (within Hyper-V's and libvirt's limits, and readable in a table)."""


MODE_FEATURES = {
    NetworkMode.ISOLATED: Feature.NETWORK_ISOLATED,
    NetworkMode.INTERNAL: Feature.NETWORK_INTERNAL,
    NetworkMode.NAT: Feature.NETWORK_NAT,
    NetworkMode.EXTERNAL: Feature.NETWORK_EXTERNAL,
}
"""The capability each mode needs."""


def parse_mode(value: object) -> NetworkMode:
    """Return the :class:`~polyvisor.model.NetworkMode` named ``value`` (a member or its value), else raise
    ValidationError."""
    try:
        if not isinstance(value, str):  # a NetworkMode is a str
            raise ValueError(value)
        return NetworkMode(value)
    except ValueError:
        modes = ", ".join(mode.value for mode in NetworkMode)
        raise ValidationError(f"{value!r} is not one of: {modes}", field="mode") from None


def validate_network_name(name: object, field_name: str = "name") -> str:
    """Return ``name`` if every backend can make a network or switch of that name, else raise ValidationError."""
    checked = validate_name(name, field_name)
    if len(checked) > MAX_NETWORK_NAME:
        raise ValidationError(
            f"is {len(checked)} characters long; a network name takes at most {MAX_NETWORK_NAME}", field=field_name
        )
    bad = _WILDCARD.search(checked)
    if bad:
        raise ValidationError(
            f"{checked!r} contains {bad.group()!r}, a wildcard to Hyper-V's switch cmdlets (it would match other "
            "switches); choose a name without * ? [ ]",
            field=field_name,
        )
    if checked.startswith("-"):
        raise ValidationError(f"{checked!r} starts with '-', which tools read as an option", field=field_name)
    return checked


@dataclass(frozen=True, slots=True)
class AddressPlan:
    """The addresses of a network with a subnet: the host's (the first), and the DHCP range (all the others)."""

    subnet: ipaddress.IPv4Network
    host: ipaddress.IPv4Address
    dhcp_start: ipaddress.IPv4Address
    dhcp_end: ipaddress.IPv4Address

    @classmethod
    def of(cls, subnet: ipaddress.IPv4Network) -> AddressPlan:
        first, last = subnet.network_address + 1, subnet.broadcast_address - 1
        return cls(subnet, first, first + 1, last)

    @property
    def netmask(self) -> str:
        return str(self.subnet.netmask)


def _subnet(value: object) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise ValidationError(f"must be a string such as '10.77.0.0/24', got {type(value).__name__}", field="subnet")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError(f"{value!r} is not an address range; write it as 10.77.0.0/24", field="subnet") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValidationError(f"{value!r} is IPv6; networks take an IPv4 range such as 10.77.0.0/24", field="subnet")
    if "/" not in value:
        raise ValidationError(f"{value!r} has no prefix length; write it as {net.network_address}/24", field="subnet")
    if str(net.network_address) != value.split("/", 1)[0]:
        raise ValidationError(
            f"{value!r} has host bits set; the range it lies in is {net} (write that)", field="subnet"
        )
    if not 8 <= net.prefixlen <= 29:
        raise ValidationError(
            f"{value!r} has prefix /{net.prefixlen}; give /8 to /29 (the host and at least five guests)",
            field="subnet",
        )
    if not net.is_private or net.is_loopback or net.is_link_local or net.is_multicast or net.is_reserved:
        raise ValidationError(
            f"{value!r} is not a private range; use one within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
            field="subnet",
        )
    return net


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """A network to create, validated on construction (:class:`~polyvisor.errors.ValidationError`)."""

    name: str
    mode: NetworkMode = NetworkMode.ISOLATED
    subnet: str | None = None
    """An IPv4 range such as ``10.77.0.0/24`` (``internal`` and ``nat`` networks, where the backend declares
    ``network-addresses``)."""
    adapter: str | None = None
    """The host's network adapter an ``external`` switch is bound to (``Get-NetAdapter``'s Name)."""

    def __post_init__(self) -> None:
        validate_network_name(self.name)
        object.__setattr__(self, "mode", parse_mode(self.mode))
        if self.subnet is not None:
            object.__setattr__(self, "subnet", str(_subnet(self.subnet)))
            if self.mode in (NetworkMode.ISOLATED, NetworkMode.EXTERNAL):
                raise ValidationError(
                    f"an {self.mode.value} network takes no subnet: the host has no address on it (use mode "
                    "'internal' or 'nat' for one it has)",
                    field="subnet",
                )
        if self.mode is NetworkMode.EXTERNAL:
            if self.adapter is None:
                raise ValidationError(
                    "an external network is bound to a host network adapter; give its name (adapter=)",
                    field="adapter",
                )
            validate_name(self.adapter, "adapter")
        elif self.adapter is not None:
            raise ValidationError(
                f"only an external network is bound to a host adapter, not an {self.mode.value} one", field="adapter"
            )

    @property
    def addresses(self) -> AddressPlan | None:
        """The host's address and the DHCP range, for a network with a subnet."""
        if self.subnet is None:
            return None
        return AddressPlan.of(ipaddress.IPv4Network(self.subnet))
