"""Guest addresses source by source, each with what it answered: the guest agent, the DHCP leases of libvirt's
networks, the host's ARP table (``virDomainInterfaceAddresses`` with ``SRC_AGENT``, ``SRC_LEASE``, ``SRC_ARP``).

An empty answer says why: the agent is not connected or not responding (libvirt's error codes), a NIC's MAC has no
lease on its network, or no ARP entry. :meth:`polyvisor.VM.wait_for_address` shows these on a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import libvirt

from polyvisor.errors import PolyvisorError, UnsupportedError
from polyvisor.model import AddressAnswer, GuestAddress
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import Definition

__all__ = ["SOURCES", "Addresses", "agent_detail", "arp_detail", "to_addresses"]

log = logging.getLogger("polyvisor.libvirt")

SOURCES = {
    "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}
_UNRESPONSIVE = {
    code
    for code in (
        getattr(libvirt, "VIR_ERR_AGENT_UNRESPONSIVE", None),
        getattr(libvirt, "VIR_ERR_AGENT_UNSYNCED", None),
        getattr(libvirt, "VIR_ERR_AGENT_COMMAND_TIMEOUT", None),
        getattr(libvirt, "VIR_ERR_AGENT_COMMAND_FAILED", None),
    )
    if code is not None
}


def agent_detail(code: int, message: str) -> str:
    """Say why the agent gave no addresses, from libvirt's error code (and its message, which tells a channel with
    no agent behind it from an agent that stopped answering)."""
    if code in _UNRESPONSIVE:
        return "agent not connected" if "not connected" in message else f"agent not responding ({message})"
    if code == libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED:
        return "agent not configured: the VM has no guest agent channel (org.qemu.guest_agent.0)"
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return f"agent not available: {message}"
    return f"agent error: {message}"


def arp_detail(message: str) -> str:
    """Say why libvirt could not read the host's ARP table, and whose fault it is.

    libvirt 9.0's reader (``virArpTableGet``) subtracts the length of two netlink headers from each message's
    length before it looks at the message's type, so the kernel's 20-byte ``NLMSG_DONE``, which Linux sends in the
    same buffer as the last neighbour entries (seen on Debian 12's 6.1 kernel), fails its check: "wrong nlmsg len"
    on every call, whatever the table holds. That is libvirt's fault, not the host's or polyvisor's.
    """
    if "wrong nlmsg len" in message:
        return (
            f"cannot read the host's ARP table ({message}): a libvirt bug, not the host's or polyvisor's: its ARP "
            "reader takes the kernel's end-of-dump message for a short entry; the agent and lease sources are "
            "unaffected"
        )
    return f"cannot read the host's ARP table ({message})"  # e.g. netlink refused inside a container


def to_addresses(found: Mapping[str, Any], source: str) -> tuple[GuestAddress, ...]:
    """interfaceAddresses' answer as GuestAddress values, by interface name."""
    return tuple(
        GuestAddress(
            interface=name,
            mac=(data.get("hwaddr") or None),
            address=addr["addr"],
            prefix=addr.get("prefix"),
            source=source,
        )
        for name, data in sorted(found.items())
        for addr in data.get("addrs") or []
    )


class Addresses:
    """Guest addresses of domains, and each source's answer, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """interfaceAddresses from each source in order; the first that answers with addresses wins."""
        dom = self._client.domain(uuid)
        last: PolyvisorError | None = None
        for source in sources:
            try:
                doing = f"reading guest addresses ({source})"
                with self._client.errors(doing, host=self._client.host, vm=dom.name()):
                    found = dom.interfaceAddresses(SOURCES[source], 0)
            except PolyvisorError as error:
                last = error
                continue
            out = list(to_addresses(found, source))
            if out:
                return out
        if last is not None and not isinstance(last, UnsupportedError):
            log.debug("no guest addresses for %s: %s", uuid, last)
        return []

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        """Ask every source in order; each answer holds its addresses or says why there are none."""
        dom = self._client.domain(uuid)
        definition: Definition | None = None
        out = []
        for source in sources:
            try:
                found = dom.interfaceAddresses(SOURCES[source], 0)
            except libvirt.libvirtError as error:
                out.append(AddressAnswer(source, (), self._error_detail(source, error)))
                continue
            addresses = to_addresses(found, source)
            if addresses:
                out.append(AddressAnswer(source, addresses))
                continue
            if definition is None:
                definition = self._client.definition(dom, fresh=False)
            out.append(AddressAnswer(source, (), self._empty_detail(source, definition)))
        return out

    def _error_detail(self, source: str, error: libvirt.libvirtError) -> str:
        code = error.get_error_code() or 0
        message = error.get_error_message() or str(error)
        if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_DOMAIN):
            with self._client.errors(f"reading guest addresses ({source})", host=self._client.host):
                raise error  # the connection or the VM is gone: not an answer, a failure
        if source == "agent":
            return agent_detail(code, message)
        if source == "arp":
            return arp_detail(message)
        return message

    def _empty_detail(self, source: str, definition: Definition) -> str:
        if source == "agent":
            return "agent answered with no addresses"
        if not definition.nics:
            return "the VM has no NICs"
        parts = []
        for nic in definition.nics:
            if source == "lease":
                if nic.network is None:
                    parts.append(f"NIC {nic.mac} is not on a libvirt network (only those hand out leases)")
                    continue
                note = "" if self._serves_dhcp(nic.network) else " (it serves no DHCP)"
                parts.append(f"no lease for {nic.mac} on network {nic.network}{note}")
            else:
                parts.append(f"no ARP entry for {nic.mac}")
        return "; ".join(parts)

    def _serves_dhcp(self, network: str) -> bool:
        with contextlib.suppress(libvirt.libvirtError, ET.ParseError, PolyvisorError):
            xml = self._client.live().networkLookupByName(network).XMLDesc(0)
            return ET.fromstring(xml).find("ip/dhcp") is not None
        return True  # unknown: say nothing about it
