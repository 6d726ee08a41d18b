"""libvirt networks as polyvisor values, made and deleted, and which domains are on one.

A network's mode is read from its XML: ``<forward mode='nat'>`` is ``nat``; no ``<forward>`` is ``internal`` when
the host has an address on it (an ``<ip>``) and ``isolated`` when it has none; ``<forward mode='bridge'>`` (and the
macvtap modes) is ``external``; a routed or open network has no polyvisor mode. A new network is built with
ElementTree (no value is spliced into XML text), defined, started and set to autostart; if starting fails (another
network or host interface has the subnet, say), it is undefined again, so nothing is left. libvirt picks the bridge
(``virbrN``, one no other network uses). Deleting refuses a network that a domain's interface names, then stops
and undefines it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import xml.etree.ElementTree as ET

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import InUseError, NotFoundError
from polyvisor.model import NetworkInfo, NetworkMode
from polyvisor.networks import NetworkSpec
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["Networks", "network_mode", "network_subnet", "network_xml"]

_EXTERNAL_FORWARDS = frozenset({"bridge", "private", "vepa", "passthrough", "hostdev"})


def network_mode(root: ET.Element) -> NetworkMode | None:
    """The polyvisor mode of a network from its XML."""
    forward = root.find("forward")
    if forward is None:
        return NetworkMode.INTERNAL if root.find("ip") is not None else NetworkMode.ISOLATED
    mode = forward.get("mode", "nat")
    if mode == "nat":
        return NetworkMode.NAT
    return NetworkMode.EXTERNAL if mode in _EXTERNAL_FORWARDS else None


def network_subnet(root: ET.Element) -> str | None:
    """The IPv4 range of the network's first IPv4 ``<ip>`` (address with netmask or prefix), if any."""
    for ip in root.findall("ip"):
        if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
            continue
        mask = ip.get("prefix") or ip.get("netmask") or "24"
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv4Network(f"{ip.get('address')}/{mask}", strict=False))
    return None


def network_xml(spec: NetworkSpec) -> str:
    """The XML of a new network."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = spec.name
    if spec.mode is NetworkMode.NAT:
        ET.SubElement(root, "forward", {"mode": "nat"})
    ET.SubElement(root, "bridge", {"stp": "on", "delay": "0"})
    plan = spec.addresses
    if plan is not None:
        ip = ET.SubElement(root, "ip", {"address": str(plan.host), "netmask": plan.netmask})
        dhcp = ET.SubElement(ip, "dhcp")
        ET.SubElement(dhcp, "range", {"start": str(plan.dhcp_start), "end": str(plan.dhcp_end)})
    return domainxml.to_text(root)


class Networks:
    """Networks over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    @property
    def host(self) -> str:
        return self._client.host

    def networks(self) -> list[NetworkInfo]:
        """Every network: listAllNetworks, then each one's state, autostart and XML."""
        conn = self._client.live()
        with self._client.errors("listing networks", host=self.host):
            return sorted((self._value(net) for net in conn.listAllNetworks()), key=lambda n: n.name)

    def _value(self, net: libvirt.virNetwork) -> NetworkInfo:
        root = ET.fromstring(net.XMLDesc(0))
        bridge = root.find("bridge")
        extra: dict[str, object] = {"autostart": bool(net.autostart())}
        if bridge is not None and bridge.get("name"):
            extra["bridge"] = bridge.get("name")
        return NetworkInfo(
            name=net.name(),
            active=bool(net.isActive()),
            kind="libvirt-network",
            uuid=net.UUIDString(),
            mode=network_mode(root),
            subnet=network_subnet(root),
            extra=extra,
        )

    def create_network(self, spec: NetworkSpec, deadline: Deadline) -> NetworkInfo:
        """networkDefineXML, create, setAutostart; undefined again if any of them fails."""
        conn = self._client.live()
        doing = f"creating network {spec.name!r}"
        with self._client.errors(doing, host=self.host):
            net = conn.networkDefineXML(network_xml(spec))
            try:
                deadline.check(doing, host=self.host)
                net.create()
                net.setAutostart(1)
                return self._value(net)
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    if net.isActive():
                        net.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    net.undefine()
                raise

    def delete_network(self, name: str, deadline: Deadline) -> None:
        """Refuse a network a domain is on; else destroy (if active) and undefine it."""
        conn = self._client.live()
        try:
            net = conn.networkLookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                raise NotFoundError(f"no network named {name!r}", host=self.host) from error
            with self._client.errors(f"finding network {name!r}", host=self.host):
                raise
        users = self.users(name)
        if users:
            listed = ", ".join(repr(user) for user in users)
            raise InUseError(
                f"network {name!r} is in use by {'VM' if len(users) == 1 else 'VMs'} {listed}; detach the NICs on it "
                "(or delete the VMs) first",
                users=users,
                host=self.host,
            )
        doing = f"deleting network {name!r}"
        deadline.check(doing, host=self.host)
        with self._client.errors(doing, host=self.host):
            if net.isActive():
                net.destroy()
            if net.isPersistent():
                net.undefine()

    def users(self, name: str) -> list[str]:
        """The domains with an interface on the network (read from every domain's definition)."""
        conn = self._client.live()
        with self._client.errors("listing the VMs on a network", host=self.host):
            return sorted(
                dom.name()
                for dom in conn.listAllDomains(0)
                if any(nic.network == name for nic in domainxml.parse_definition(dom.XMLDesc(0)).nics)
            )
