"""NAT NICs (``nat-forwarding``) on WinNAT: the host's one NAT network, a static address per NIC, a static mapping
per forward.

Microsoft's setup (learn.microsoft.com, setup-nat-network) is an Internal switch, the gateway address on its host
adapter (``New-NetIPAddress -InterfaceAlias "vEthernet (<switch>)"``) and ``New-NetNat
-InternalIPInterfaceAddressPrefix``; a host has one NAT network, and WinNAT assigns no addresses. So, for a VM with
NAT NICs, :meth:`NatNics.plan` reads the host first (``Get-NetNat``, ``Get-NetIPAddress``,
``Get-NetNatStaticMapping``, ``Get-VMSwitch``, every VM's Notes) and refuses what cannot work before anything is
made: another NAT network over a prefix other than the ``nat_prefix`` option's, a NAT without a host address in its
prefix, a forward whose external protocol, address and port a mapping already has, a prefix with no free address.
It reuses the host's NAT when it has one; otherwise :meth:`NatNics.prepare` makes ``polyvisor-nat`` (the switch and
the NetNat), with the prefix's first address as the gateway. Each NIC gets the lowest address no one holds (the
gateway, any mapping's internal address, the addresses of other VMs' NAT NICs), written into the seed's
network-config by MAC; :meth:`NatNics.map` adds one ``Add-NetNatStaticMapping`` per forward and removes those it made
if one fails. The addresses are kept in the VM's Notes (a label of the backend's own, :data:`NAT_LABEL`), which is
how info() reports them, finds the VM's mappings and deletes them with the VM (:meth:`NatNics.release`). The NAT
network itself stays: it is the host's, maybe shared with others, and the next NAT NIC reuses it. Every value is a
parameter, never script text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from polyvisor.backend import Deadline
from polyvisor.backend_helpers import random_mac
from polyvisor.errors import AlreadyExistsError, BackendError, PolyvisorError, ValidationError
from polyvisor.model import NicKind, PortForward, VMSpec
from polyvisor.provisioning.nat import NatAddress, pick_address
from polyvisor_hyperv.client import HyperVClient, as_guid, as_text, then
from polyvisor_hyperv.commands import SWITCH, Step
from polyvisor_hyperv.notes import split_notes
from polyvisor_hyperv.states import enum_name
from polyvisor_hyperv.transport import Row

__all__ = ["DEFAULT_PREFIX", "NAT_LABEL", "NAT_NAME", "NatNics", "NatPlan", "nat_label"]

NAT_NAME = "polyvisor-nat"
"""The Internal switch and the NetNat polyvisor makes when the host has no NAT network."""
DEFAULT_PREFIX = "172.31.213.0/24"
"""The prefix of the NAT network polyvisor makes, unless the ``nat_prefix`` option names another."""
NAT_LABEL = "polyvisor.hyperv/nat"
"""The backend's own label in a VM's Notes: its NAT network and its NAT NICs' addresses (JSON); never shown."""
MAC_PREFIX = "00:15:5d"
_MAPPING_PROPERTIES = (
    "StaticMappingID",
    "NatName",
    "Protocol",
    "ExternalIPAddress",
    "ExternalPort",
    "InternalIPAddress",
    "InternalPort",
)


def _adapter_switch(alias: str) -> str | None:
    """``vEthernet (name)`` -> ``name``: the switch whose host adapter it is."""
    if alias.startswith("vEthernet (") and alias.endswith(")"):
        return alias[len("vEthernet (") : -1]
    return None


@dataclass
class NatPlan:
    """What a new VM's NAT NICs need, read and checked before anything is made; what was made, for a rollback."""

    spec: VMSpec
    """The spec with a MAC on every NAT NIC (the seed matches the NIC by it)."""
    nat: str
    switch: str
    prefix: str
    gateway: str
    addresses: tuple[NatAddress, ...]
    forwards: tuple[tuple[NatAddress, PortForward], ...]
    make_switch: bool = False
    make_address: bool = False
    make_nat: bool = False
    made_switch: str | None = None
    made_nat: bool = False
    made_mappings: list[int] = field(default_factory=list)

    def label(self) -> str:
        """The Notes label: the NAT network's name and the NICs' addresses."""
        data = {"nat": self.nat, "addresses": [address.fact() for address in self.addresses]}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class NatLabel:
    """A VM's NAT label, read back."""

    nat: str
    addresses: tuple[NatAddress, ...]


def nat_label(notes: str) -> NatLabel | None:
    """The NAT label in a VM's Notes, or None (none, or not readable)."""
    _, labels = split_notes(notes)
    text = labels.get(NAT_LABEL)
    if text is None:
        return None
    try:
        data = json.loads(text)
        addresses = tuple(NatAddress(**item) for item in data["addresses"])
        return NatLabel(str(data["nat"]), addresses)
    except (ValueError, TypeError, KeyError):
        return None


class NatNics:
    """WinNAT for the VMs' NAT NICs, over one client."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client
        self._explicit = client.options.nat_prefix is not None
        self._prefix = client.options.nat_prefix or DEFAULT_PREFIX

    @property
    def host(self) -> str:
        return self._client.host

    def _rows(self, command: str, select: Sequence[str], deadline: Deadline, **parameters: Any) -> list[Row]:
        return self._client.run(
            [Step(command, parameters)], doing=f"reading the host's NAT ({command})", select=select, deadline=deadline
        )

    # -- before anything is made ----------------------------------------------------------------------------------
    def plan(self, spec: VMSpec, deadline: Deadline) -> NatPlan | None:
        """Read the host's NAT, choose the addresses and check the forwards; None for a spec without NAT NICs."""
        if not any(nic.kind is NicKind.NAT for nic in spec.nics):
            return None
        nics = tuple(
            dataclasses.replace(nic, mac=random_mac(MAC_PREFIX)) if nic.kind is NicKind.NAT and not nic.mac else nic
            for nic in spec.nics
        )
        spec = dataclasses.replace(spec, nics=nics)
        nats = self._rows("Get-NetNat", ("Name", "InternalIPInterfaceAddressPrefix"), deadline)
        ips = self._rows(
            "Get-NetIPAddress", ("IPAddress", "PrefixLength", "InterfaceAlias"), deadline, AddressFamily="IPv4"
        )
        mappings = self._rows("Get-NetNatStaticMapping", _MAPPING_PROPERTIES, deadline)
        switches = {
            as_text(r.get("Name")).casefold(): r for r in self._rows("Get-VMSwitch", ("Name", "SwitchType"), deadline)
        }
        holders: dict[str, str] = {}  # address -> the VM whose NAT NIC has it
        for row in self._client.run(
            [Step("Get-VM")], doing="reading the VMs' NAT addresses", select=("Name", "Notes"), deadline=deadline
        ):
            label = nat_label(as_text(row.get("Notes")))
            for address in label.addresses if label else ():
                holders[address.address] = as_text(row.get("Name"))
        plan = self._network(spec, nats, ips, switches)
        taken = {plan.gateway, *holders, *(as_text(row.get("InternalIPAddress")) for row in mappings)}
        taken |= {as_text(row.get("IPAddress")) for row in ips}
        length = ipaddress.IPv4Network(plan.prefix).prefixlen
        addresses: list[NatAddress] = []
        forwards: list[tuple[NatAddress, PortForward]] = []
        for nic in spec.nics:
            if nic.kind is not NicKind.NAT:
                continue
            assert nic.mac is not None
            address = NatAddress(
                nic.mac, pick_address(plan.prefix, taken, host=self.host, vm=spec.name), length, plan.gateway
            )
            taken.add(address.address)
            addresses.append(address)
            for forward in nic.forwards:
                self._check_free(forward, mappings, holders, spec.name)
                forwards.append((address, forward))
        plan.addresses, plan.forwards = tuple(addresses), tuple(forwards)
        return plan

    def _network(self, spec: VMSpec, nats: list[Row], ips: list[Row], switches: dict[str, Row]) -> NatPlan:
        """The host's NAT network to use (its one, or polyvisor's to make), or a clear refusal."""
        if len(nats) > 1:
            names = ", ".join(repr(as_text(row.get("Name"))) for row in nats)
            raise BackendError(
                f"the host has {len(nats)} NAT networks ({names}); Windows supports one per host and is in an unknown "
                "state with more (setup-nat-network, Troubleshooting): remove all but one (Remove-NetNat)",
                host=self.host,
                vm=spec.name,
            )
        if nats:
            name = as_text(nats[0].get("Name"))
            prefix = as_text(nats[0].get("InternalIPInterfaceAddressPrefix"))
            if prefix != self._prefix and self._explicit:
                raise ValidationError(
                    f"the host's one NAT network {name!r} is over {prefix}, not the nat_prefix {self._prefix} this "
                    f"connection asks for, and Windows allows one NAT network per host: set nat_prefix={prefix} to "
                    "put NAT NICs in it, or remove that NAT (Remove-NetNat) if nothing uses it",
                    field="nat_prefix",
                )
            network = ipaddress.IPv4Network(prefix, strict=False)
            for row in ips:
                switch = _adapter_switch(as_text(row.get("InterfaceAlias")))
                address = as_text(row.get("IPAddress"))
                if switch is not None and ipaddress.IPv4Address(address) in network:
                    return NatPlan(spec, name, switch, str(network), address, (), ())
            raise BackendError(
                f"the host's NAT network {name!r} over {prefix} has no host address on a virtual switch's adapter, so "
                "its guests would have no gateway; give an Internal switch's vEthernet adapter an address in it "
                "(New-NetIPAddress) or remove the NAT (Remove-NetNat)",
                host=self.host,
                vm=spec.name,
            )
        network = ipaddress.IPv4Network(self._prefix)
        gateway = str(next(network.hosts()))
        for row in ips:
            held = ipaddress.IPv4Address(as_text(row.get("IPAddress")))
            alias = as_text(row.get("InterfaceAlias"))
            if held in network and (str(held) != gateway or _adapter_switch(alias) != NAT_NAME):
                raise ValidationError(
                    f"nat_prefix {network} overlaps the host's address {held} on {alias!r}; choose a prefix the "
                    "host does not use (the nat_prefix option)",
                    field="nat_prefix",
                )
        existing = switches.get(NAT_NAME.casefold())
        if existing is not None and enum_name(existing.get("SwitchType")).casefold() != "internal":
            raise BackendError(
                f"the host has a virtual switch named {NAT_NAME!r} that is not Internal; rename or remove it so "
                "polyvisor can make its NAT network",
                host=self.host,
                vm=spec.name,
            )
        has_gateway = any(
            as_text(row.get("IPAddress")) == gateway and _adapter_switch(as_text(row.get("InterfaceAlias"))) == NAT_NAME
            for row in ips
        )
        return NatPlan(
            spec,
            NAT_NAME,
            NAT_NAME,
            str(network),
            gateway,
            (),
            (),
            make_switch=existing is None,
            make_address=not has_gateway,
            make_nat=True,
        )

    def _check_free(self, forward: PortForward, mappings: list[Row], holders: dict[str, str], vm: str) -> None:
        for row in mappings:
            held = PortForward(
                int(row.get("ExternalPort") or 0) or 1,
                int(row.get("InternalPort") or 0) or 1,
                enum_name(row.get("Protocol")).lower(),
                as_text(row.get("ExternalIPAddress")) or "0.0.0.0",
            )
            if held.clashes(forward):
                internal = as_text(row.get("InternalIPAddress"))
                owner = f"VM {holders[internal]!r}" if internal in holders else "no VM of polyvisor's"
                raise AlreadyExistsError(
                    f"host port {forward.host_address}:{forward.host_port}/{forward.protocol} is mapped already by "
                    f"NAT {as_text(row.get('NatName'))!r} (static mapping {row.get('StaticMappingID')}, to "
                    f"{internal}:{held.guest_port}, {owner}); give this VM another host port",
                    host=self.host,
                    vm=vm,
                )

    # -- making -----------------------------------------------------------------------------------------------------
    def prepare(self, plan: NatPlan, deadline: Deadline) -> None:
        """Make what the NAT network lacks: the switch, the gateway address, the NetNat."""
        try:
            if plan.make_switch:
                rows = self._client.run(
                    [Step("New-VMSwitch", {"Name": plan.switch, "SwitchType": "Internal"})],
                    doing=f"making the NAT's virtual switch {plan.switch!r} (New-VMSwitch)",
                    select=("Id",),
                    deadline=deadline,
                )
                plan.made_switch = as_guid(rows[0].get("Id")) if rows else None
            if plan.make_address:
                length = ipaddress.IPv4Network(plan.prefix).prefixlen
                self._client.run(
                    [
                        Step(
                            "New-NetIPAddress",
                            {
                                "IPAddress": plan.gateway,
                                "PrefixLength": length,
                                "InterfaceAlias": f"vEthernet ({plan.switch})",
                            },
                        )
                    ],
                    doing=f"giving the NAT's gateway {plan.gateway} to the host (New-NetIPAddress)",
                    deadline=deadline,
                )
            if plan.make_nat:
                self._client.run(
                    [Step("New-NetNat", {"Name": plan.nat, "InternalIPInterfaceAddressPrefix": plan.prefix})],
                    doing=f"making the NAT network {plan.nat!r} over {plan.prefix} (New-NetNat)",
                    deadline=deadline,
                )
                plan.made_nat = True
        except BaseException:
            self.roll_back(plan)
            raise

    def map(self, plan: NatPlan, deadline: Deadline) -> None:
        """Add-NetNatStaticMapping for every forward; a failure removes the ones this call made."""
        try:
            for address, forward in plan.forwards:
                rows = self._client.run(
                    [
                        Step(
                            "Add-NetNatStaticMapping",
                            {
                                "NatName": plan.nat,
                                "Protocol": forward.protocol.upper(),
                                "ExternalIPAddress": forward.host_address,
                                "ExternalPort": forward.host_port,
                                "InternalIPAddress": address.address,
                                "InternalPort": forward.guest_port,
                            },
                        )
                    ],
                    doing=f"mapping host port {forward} to {address.address} (Add-NetNatStaticMapping)",
                    vm=plan.spec.name,
                    select=("StaticMappingID",),
                    deadline=deadline,
                )
                plan.made_mappings += [int(row.get("StaticMappingID") or 0) for row in rows]
        except BaseException:
            self.roll_back(plan)
            raise

    def roll_back(self, plan: NatPlan) -> None:
        """Remove what this plan made: its mappings, then the NetNat and the switch (its address goes with it)."""
        with contextlib.suppress(PolyvisorError):
            if plan.made_mappings:
                self._remove_mappings(plan.nat, plan.made_mappings, None)
                plan.made_mappings = []
        with contextlib.suppress(PolyvisorError):
            if plan.made_nat:
                self._client.run(
                    [Step("Remove-NetNat", {"Name": plan.nat, "Confirm": False})], doing="rolling back the NAT network"
                )
                plan.made_nat = False
        with contextlib.suppress(PolyvisorError):
            if plan.made_switch:
                self._client.run(
                    [Step("Get-VMSwitch", {"Id": plan.made_switch}), then("Remove-VMSwitch", Force=SWITCH)],
                    doing="rolling back the NAT's virtual switch",
                )
                plan.made_switch = None

    def _remove_mappings(self, nat: str, ids: Sequence[int], deadline: Deadline | None) -> None:
        self._client.run(
            [
                Step(
                    "Remove-NetNatStaticMapping",
                    {"NatName": nat, "StaticMappingID": [str(i) for i in ids], "Confirm": False},
                )
            ],
            doing=f"removing static mappings {', '.join(map(str, ids))} (Remove-NetNatStaticMapping)",
            deadline=deadline,
        )

    # -- reading and deleting ---------------------------------------------------------------------------------------
    def _mappings_of(self, label: NatLabel, deadline: Deadline | None) -> list[Row]:
        addresses = {address.address for address in label.addresses}
        rows = self._client.run(
            [Step("Get-NetNatStaticMapping", {"NatName": label.nat, "ErrorAction": "SilentlyContinue"})],
            doing="reading the VM's static mappings (Get-NetNatStaticMapping)",
            select=_MAPPING_PROPERTIES,
            deadline=deadline,
        )
        return [row for row in rows if as_text(row.get("InternalIPAddress")) in addresses]

    def forwards(self, label: NatLabel, deadline: Deadline | None = None) -> list[dict[str, Any]]:
        """The VM's forwards as the host maps them now, each with its NIC's MAC and guest address."""
        macs = {address.address: address.mac for address in label.addresses}
        facts = []
        for row in self._mappings_of(label, deadline):
            internal = as_text(row.get("InternalIPAddress"))
            forward = PortForward(
                int(row.get("ExternalPort") or 0),
                int(row.get("InternalPort") or 0),
                enum_name(row.get("Protocol")).lower(),
                as_text(row.get("ExternalIPAddress")),
            )
            facts.append(forward.fact(macs[internal], internal))
        return facts

    def release(self, label: NatLabel | None, vm: str, deadline: Deadline) -> None:
        """Remove the mappings to a deleted VM's addresses; the NAT network stays for the next NAT NIC."""
        if label is None:
            return
        ids = [int(row.get("StaticMappingID") or 0) for row in self._mappings_of(label, deadline)]
        if not ids:
            return
        try:
            self._remove_mappings(label.nat, ids, deadline)
        except PolyvisorError as error:
            raise BackendError(
                f"the VM is deleted, but its static mappings {ids} of NAT {label.nat!r} could not be removed: {error}; "
                "remove them with Remove-NetNatStaticMapping",
                host=self.host,
                vm=vm,
            ) from error
