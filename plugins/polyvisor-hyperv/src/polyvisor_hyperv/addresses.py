"""Guest addresses as Hyper-V learns them: from the guest's data exchange integration service (KVP), per network
adapter (``Get-VMNetworkAdapter`` IPAddresses).

KVP is Hyper-V's one source (``"kvp"``). An empty answer says why: the VM has no adapter, none is connected to a
virtual switch, the VM is not running, or the guest's KVP daemon has reported nothing yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvisor.model import AddressAnswer, GuestAddress, PowerState
from polyvisor_hyperv.client import HyperVClient, as_text
from polyvisor_hyperv.devices import Devices, colon_mac
from polyvisor_hyperv.states import to_status

__all__ = ["KVP_SILENT", "Addresses"]

KVP_SILENT = "no addresses reported (integration services / KVP daemon not running in the guest?)"


class Addresses:
    """Address answers of VMs, from KVP."""

    def __init__(self, client: HyperVClient, devices: Devices) -> None:
        self._client = client
        self._devices = devices

    def addresses(self, uuid: str, sources: Sequence[str]) -> list[GuestAddress]:
        """What Hyper-V learnt from the guest's KVP daemon, per adapter (``Get-VMNetworkAdapter`` IPAddresses).

        ``sources`` is not consulted: Hyper-V learns guest addresses one way, through its data exchange integration
        service (KVP), the only source the backend declares.
        """
        return list(self.answer(uuid).addresses)

    def answer(self, uuid: str) -> AddressAnswer:
        """The KVP source's answer, with why it has no address when it has none."""
        rows = self._devices.adapters(uuid)
        found: list[GuestAddress] = []
        for row in rows:
            addresses = row.get("IPAddresses") or []
            if isinstance(addresses, str):
                addresses = [addresses]
            mac = colon_mac(as_text(row.get("MacAddress"))) or None
            found += [GuestAddress(as_text(row.get("Name")), mac, str(a), None, "kvp") for a in addresses]
        if found:
            return AddressAnswer("kvp", tuple(found))
        if not rows:
            return AddressAnswer("kvp", (), "the VM has no network adapter")
        if not any(row.get("SwitchName") for row in rows):
            return AddressAnswer("kvp", (), "no network adapter is connected to a virtual switch")
        state = to_status(self._client.vm_row(uuid, ("State",)).get("State")).state
        if state is not PowerState.RUNNING:
            return AddressAnswer("kvp", (), f"the VM is {state.value}; KVP reports addresses of a running guest only")
        return AddressAnswer("kvp", (), KVP_SILENT)

    def address_answers(self, uuid: str, sources: Sequence[str]) -> list[AddressAnswer]:
        return [
            self.answer(uuid) if source == "kvp" else AddressAnswer(source, (), "unknown source") for source in sources
        ]
