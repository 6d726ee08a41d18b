"""Hyper-V's virtual switches as polyvisor networks: listed, made and deleted, and which VMs are on one.

A switch's type is its mode: Private is ``isolated``, Internal ``internal``, External ``external`` (Hyper-V has no
NAT switch type, and no DHCP server, so no ``nat`` and no ``network-addresses``). A new Private or Internal switch
is ``New-VMSwitch -SwitchType``; an External one is bound to a physical adapter, looked up first among
``Get-NetAdapter -Physical`` (exactly, by name: its ``-Name`` is a wildcard pattern) and refused when another switch
already holds it, then ``New-VMSwitch -NetAdapterName`` with the host sharing the adapter (``-AllowManagementOS``,
so an External switch never cuts the host off its own network). Deleting reads every VM's adapters in one request,
refuses a switch any is on, naming the VMs, and removes the switch by its Id (``Get-VMSwitch -Id |
Remove-VMSwitch -Force``), never by a name Remove-VMSwitch would read as a wildcard. Every value is a parameter,
never script text.
"""

from __future__ import annotations

from polyvisor.backend import Deadline
from polyvisor.errors import InUseError, NotFoundError
from polyvisor.model import NetworkInfo, NetworkMode
from polyvisor.networks import NetworkSpec
from polyvisor_hyperv.client import HyperVClient, as_guid, as_text, then
from polyvisor_hyperv.commands import SWITCH, Step, Value
from polyvisor_hyperv.states import enum_name
from polyvisor_hyperv.transport import Row

__all__ = ["SWITCH_TYPES", "Networks"]

SWITCH_TYPES = {NetworkMode.ISOLATED: "Private", NetworkMode.INTERNAL: "Internal", NetworkMode.EXTERNAL: "External"}
"""The switch type of each mode Hyper-V has."""
_MODES = {kind.casefold(): mode for mode, kind in SWITCH_TYPES.items()}
_SWITCH_PROPERTIES = ("Name", "Id", "SwitchType", "NetAdapterInterfaceDescription", "AllowManagementOS")


class Networks:
    """Virtual switches over one client."""

    def __init__(self, client: HyperVClient) -> None:
        self._client = client

    @property
    def host(self) -> str:
        return self._client.host

    def _switch_rows(self, deadline: Deadline | None = None) -> list[Row]:
        return self._client.run(
            [Step("Get-VMSwitch")], doing="listing virtual switches", select=_SWITCH_PROPERTIES, deadline=deadline
        )

    def networks(self) -> list[NetworkInfo]:
        """Get-VMSwitch: every switch, its type as the mode."""
        return sorted((self._value(row) for row in self._switch_rows()), key=lambda n: n.name)

    @staticmethod
    def _value(row: Row) -> NetworkInfo:
        kind = enum_name(row.get("SwitchType")).lower()
        extra: dict[str, object] = {"allow_management_os": bool(row.get("AllowManagementOS"))}
        adapter = as_text(row.get("NetAdapterInterfaceDescription"))
        if adapter:
            extra["adapter"] = adapter
        return NetworkInfo(
            name=as_text(row.get("Name")),
            active=True,
            kind=kind,
            uuid=as_guid(row.get("Id")),
            mode=_MODES.get(kind),
            extra=extra,
        )

    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        """New-VMSwitch: Private, Internal, or External on a free physical adapter."""
        parameters: dict[str, Value] = {"Name": spec.name}
        if spec.mode is NetworkMode.EXTERNAL and spec.adapter is not None:
            parameters["NetAdapterName"] = self._free_adapter(spec.adapter, deadline)
            parameters["AllowManagementOS"] = True
        else:
            parameters["SwitchType"] = SWITCH_TYPES[spec.mode]
        rows = self._client.run(
            [Step("New-VMSwitch", parameters)],
            doing=f"creating virtual switch {spec.name!r} (New-VMSwitch)",
            select=_SWITCH_PROPERTIES,
            deadline=deadline,
        )
        return self._value(rows[0])

    def _free_adapter(self, wanted: str, deadline: Deadline) -> str:
        adapters = self._client.run(
            [Step("Get-NetAdapter", {"Physical": SWITCH})],
            doing="listing the host's network adapters (Get-NetAdapter)",
            select=("Name", "InterfaceDescription"),
            deadline=deadline,
        )
        by_name = {as_text(row.get("Name")).casefold(): row for row in adapters}
        found = by_name.get(wanted.casefold())
        if found is None:
            names = ", ".join(sorted(as_text(row.get("Name")) for row in adapters)) or "none"
            raise NotFoundError(
                f"the host has no physical network adapter named {wanted!r} (adapters: {names})", host=self.host
            )
        description = as_text(found.get("InterfaceDescription"))
        for row in self._switch_rows(deadline):
            if description and as_text(row.get("NetAdapterInterfaceDescription")) == description:
                holder = as_text(row.get("Name"))
                raise InUseError(
                    f"adapter {wanted!r} is already bound to virtual switch {holder!r}; an adapter takes one "
                    "external switch",
                    users=(),
                    host=self.host,
                )
        return as_text(found.get("Name"))

    def delete_network(self, name: str, deadline: Deadline) -> None:
        """Refuse a switch a VM's adapter is on; else Remove-VMSwitch -Force by its Id."""
        switch = next((row for row in self._switch_rows(deadline) if as_text(row.get("Name")) == name), None)
        if switch is None:
            raise NotFoundError(f"no virtual switch named {name!r}", host=self.host)
        users = self.users(name, deadline)
        if users:
            listed = ", ".join(repr(user) for user in users)
            raise InUseError(
                f"virtual switch {name!r} is in use by {'VM' if len(users) == 1 else 'VMs'} {listed}; detach the "
                "network adapters on it (or delete the VMs) first",
                users=users,
                host=self.host,
            )
        self._client.run(
            [Step("Get-VMSwitch", {"Id": as_guid(switch.get("Id"))}), then("Remove-VMSwitch", Force=SWITCH)],
            doing=f"removing virtual switch {name!r} (Remove-VMSwitch)",
            deadline=deadline,
        )

    def users(self, name: str, deadline: Deadline | None = None) -> list[str]:
        """The VMs with a network adapter on the switch (Get-VM | Get-VMNetworkAdapter, one request)."""
        rows = self._client.run(
            [Step("Get-VM"), then("Get-VMNetworkAdapter")],
            doing="listing the VMs' network adapters",
            select=("VMName", "SwitchName"),
            deadline=deadline,
        )
        return sorted(
            {as_text(row.get("VMName")) for row in rows if as_text(row.get("SwitchName")).casefold() == name.casefold()}
        )
