"""The host's IP addresses (NetTCPIP) and its NAT (NetNat, WinNAT): New-/Get-NetIPAddress, *-NetNat and
*-NetNatStaticMapping.

What Windows documents and the model keeps: a host has one NAT network (setup-nat-network: "you are limited to one
NAT network per host"), a NetNat object named by ``-Name`` over an ``-InternalIPInterfaceAddressPrefix``; static
mappings of a NAT, each ``-Protocol`` TCP or UDP from ``-ExternalIPAddress``:``-ExternalPort`` to
``-InternalIPAddress``:``-InternalPort`` (the external port when not given), numbered by ``StaticMappingID``. What
it assumes (docs/hyperv-fidelity.md says which): the wording of every error, that a second mapping of one external
protocol, address and port is refused (``0.0.0.0`` standing for every address), and that removing a NAT removes its
mappings. Addresses live on the host's interfaces: ``Loopback Pseudo-Interface 1``, the physical ``Ethernet`` and the
``vEthernet (<switch>)`` adapter of every Internal switch (or External one the host shares); an address goes with
its switch.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass

from polyvisor_hyperv_loopback.powershell.errors import HostError

from .state import HostState

__all__ = ["IPAddressRecord", "MappingRecord", "NatRecord", "NetNat"]

LOOPBACK_ALIAS = "Loopback Pseudo-Interface 1"
ETHERNET_ADDRESS = ("192.0.2.10", 24)
"""The physical adapter's address (TEST-NET-1: the host's external address in the model)."""


@dataclass
class IPAddressRecord:
    """An address on one of the host's interfaces (MSFT_NetIPAddress)."""

    ip_address: str
    prefix_length: int
    interface_alias: str
    interface_index: int
    address_family: str = "IPv4"


@dataclass
class NatRecord:
    """A NetNat object (MSFT_NetNat)."""

    name: str
    internal_prefix: str | None
    external_prefix: str | None = None


@dataclass
class MappingRecord:
    """A static mapping of a NAT (MSFT_NetNatStaticMapping)."""

    static_mapping_id: int
    nat_name: str
    protocol: str
    external_ip_address: str
    external_port: int
    internal_ip_address: str
    internal_port: int
    remote_external_ip_address_prefix: str = "0.0.0.0/0"


def _invalid(message: str = "The parameter is incorrect.", error_id: str = "Windows System Error 87") -> HostError:
    return HostError(message, error_id=error_id, category="InvalidArgument")


def _prefix(text: str | None) -> ipaddress.IPv4Network | None:
    if text is None:
        return None
    try:
        return ipaddress.IPv4Network(text)
    except ValueError:
        raise _invalid() from None


class NetNat:
    """The host's interface addresses, its NAT and the NAT's static mappings."""

    def __init__(self, state: HostState) -> None:
        self._state = state
        self._cond = state.condition
        self._indexes: dict[str, int] = {LOOPBACK_ALIAS.casefold(): 1, "ethernet": 4}
        self._addresses: list[IPAddressRecord] = [
            IPAddressRecord("127.0.0.1", 8, LOOPBACK_ALIAS, 1),
            IPAddressRecord(ETHERNET_ADDRESS[0], ETHERNET_ADDRESS[1], "Ethernet", 4),
        ]
        self._nats: list[NatRecord] = []
        self._mappings: list[MappingRecord] = []
        self._next_mapping = 0

    # -- interfaces and their addresses ---------------------------------------------------------------------------
    def _interfaces(self) -> dict[str, str]:
        """Alias (case-folded) -> alias: the loopback, the physical adapters and the host's vEthernet adapters."""
        aliases = [LOOPBACK_ALIAS, *(adapter.name for adapter in self._state.net_adapters)]
        for switch in self._state.switches.values():
            if switch.switch_type == "Internal" or (switch.switch_type == "External" and switch.allow_management_os):
                aliases.append(f"vEthernet ({switch.name})")
        return {alias.casefold(): alias for alias in aliases}

    def _index(self, alias: str) -> int:
        return self._indexes.setdefault(alias.casefold(), 10 + len(self._indexes))

    def ip_addresses(self) -> list[IPAddressRecord]:
        """Every address on an interface the host has (a removed switch's adapter took its addresses with it)."""
        with self._cond:
            interfaces = self._interfaces()
            self._addresses = [a for a in self._addresses if a.interface_alias.casefold() in interfaces]
            return [copy.deepcopy(address) for address in self._addresses]

    def new_ip_address(
        self, ip_address: str, prefix_length: int, *, alias: str | None, index: int | None
    ) -> IPAddressRecord:
        """New-NetIPAddress on the interface named ``alias`` or numbered ``index``."""
        try:
            address = ipaddress.ip_address(ip_address)
        except ValueError:
            raise _invalid() from None
        family = "IPv4" if address.version == 4 else "IPv6"
        if not 0 <= prefix_length <= address.max_prefixlen:
            raise _invalid()
        with self._cond:
            current = self.ip_addresses()
            interfaces = self._interfaces()
            if alias is not None:
                found = interfaces.get(alias.casefold())
                if found is None:
                    raise HostError(
                        f"No MSFT_NetIPInterface objects found with property 'InterfaceAlias' equal to '{alias}'.  "
                        "Verify the value of the property and retry.",
                        error_id="CmdletizationQuery_NotFound_InterfaceAlias,New-NetIPAddress",
                        category="ObjectNotFound",
                        target_name=alias,
                    )
            else:
                by_index = {self._index(name): name for name in interfaces.values()}
                found = by_index.get(index or 0)
                if found is None:
                    raise HostError(
                        f"No MSFT_NetIPInterface objects found with property 'InterfaceIndex' equal to '{index}'.  "
                        "Verify the value of the property and retry.",
                        error_id="CmdletizationQuery_NotFound_InterfaceIndex,New-NetIPAddress",
                        category="ObjectNotFound",
                        target_name=str(index),
                    )
            if any(a.ip_address == str(address) and a.interface_alias.casefold() == found.casefold() for a in current):
                raise HostError(
                    "Instance MSFT_NetIPAddress already exists",
                    error_id="Windows System Error 87,New-NetIPAddress",
                    category="InvalidArgument",
                )
            record = IPAddressRecord(str(address), prefix_length, found, self._index(found), family)
            self._addresses.append(record)
            return copy.deepcopy(record)

    # -- the NAT ---------------------------------------------------------------------------------------------------
    def nats(self) -> list[NatRecord]:
        with self._cond:
            return [copy.deepcopy(nat) for nat in self._nats]

    def new_nat(self, name: str, internal_prefix: str | None, external_prefix: str | None) -> NatRecord:
        """New-NetNat: refused while the host has a NAT network (one per host)."""
        internal, external = _prefix(internal_prefix), _prefix(external_prefix)
        if internal is None and external is None:
            raise _invalid()
        with self._cond:
            if self._nats:
                raise _invalid()
            nat = NatRecord(name, str(internal) if internal else None, str(external) if external else None)
            self._nats.append(nat)
            return copy.deepcopy(nat)

    def remove_nats(self, names: list[str] | None) -> list[NatRecord]:
        """Remove-NetNat: the NATs named (every one without names) and their mappings."""
        with self._cond:
            doomed = [nat for nat in self._nats if names is None or nat.name.casefold() in _folded(names)]
            gone = {nat.name.casefold() for nat in doomed}
            self._nats = [nat for nat in self._nats if nat.name.casefold() not in gone]
            self._mappings = [m for m in self._mappings if m.nat_name.casefold() not in gone]
            return doomed

    # -- static mappings -------------------------------------------------------------------------------------------
    def mappings(self) -> list[MappingRecord]:
        with self._cond:
            return [copy.deepcopy(mapping) for mapping in self._mappings]

    def add_mapping(
        self,
        nat_name: str,
        protocol: str,
        external_ip_address: str,
        external_port: int,
        internal_ip_address: str,
        internal_port: int | None,
    ) -> MappingRecord:
        """Add-NetNatStaticMapping: refused for a NAT that does not exist, a port out of range, or an external
        protocol, address and port another mapping has."""
        try:
            external = ipaddress.IPv4Address(external_ip_address)
            internal = ipaddress.IPv4Address(internal_ip_address)
        except ValueError:
            raise _invalid() from None
        for port in (external_port, internal_port):
            if port is not None and not 0 <= port <= 65535:
                raise _invalid()
        with self._cond:
            nat = next((n for n in self._nats if n.name.casefold() == nat_name.casefold()), None)
            if nat is None:
                raise HostError(
                    f"No MSFT_NetNat objects found with property 'Name' equal to '{nat_name}'.  Verify the value of "
                    "the property and retry.",
                    error_id="CmdletizationQuery_NotFound_Name,Add-NetNatStaticMapping",
                    category="ObjectNotFound",
                    target_name=nat_name,
                )
            for held in self._mappings:
                same_address = str(external) == held.external_ip_address or "0.0.0.0" in (
                    str(external),
                    held.external_ip_address,
                )
                if held.protocol == protocol and held.external_port == external_port and same_address:
                    raise HostError(
                        "The object already exists.",
                        error_id="Windows System Error 5010,Add-NetNatStaticMapping",
                        category="ResourceExists",
                    )
            record = MappingRecord(
                self._next_mapping,
                nat.name,
                protocol,
                str(external),
                external_port,
                str(internal),
                external_port if internal_port is None else internal_port,
            )
            self._next_mapping += 1
            self._mappings.append(record)
            return copy.deepcopy(record)

    def remove_mappings(self, nat_names: list[str] | None, ids: list[int] | None) -> list[MappingRecord]:
        """Remove-NetNatStaticMapping: those of the NATs named and with the IDs given (every one without either)."""
        with self._cond:

            def doomed(mapping: MappingRecord) -> bool:
                named = nat_names is None or mapping.nat_name.casefold() in _folded(nat_names)
                return named and (ids is None or mapping.static_mapping_id in ids)

            removed = [m for m in self._mappings if doomed(m)]
            self._mappings = [m for m in self._mappings if not doomed(m)]
            return removed


def _folded(names: list[str]) -> set[str]:
    return {name.casefold() for name in names}
