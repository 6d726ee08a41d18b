"""Disk and NIC hot-plug on a running guest, and guest addresses per interface, through polyvisor's API.

The guest's side is checked through its agent (raw libvirt), independently of the code under test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from polyvisor import DiskSpec, NicSpec, PowerState
from polyvisor.testing import eventually

from .pvguest import agent_addresses, wait_marker
from .support import NETWORK, POOL, agent_command

if TYPE_CHECKING:
    import libvirt

    from .pvguest import Guests
    from .support import GuestImage


MAC = "52:54:00:7e:57:11"
HOTPLUG_MAC = "52:54:00:7e:57:12"


def guest_macs(dom: libvirt.virDomain) -> set[str]:
    """The MAC addresses the guest itself sees."""
    return {i.get("hardware-address") for i in agent_command(dom, "guest-network-get-interfaces")}


def guest_disks(dom: libvirt.virDomain) -> set[str]:
    """The virtio block devices the guest itself sees (by kernel name)."""
    disks: list[dict[str, Any]] = agent_command(dom, "guest-get-disks")
    return {d["name"].rsplit("/", 1)[-1] for d in disks}


def test_addresses_come_from_the_agent_per_interface(guests: Guests, x86_image: GuestImage) -> None:
    vm = guests.create(x86_image, "addr", nics=(NicSpec(network=NETWORK, mac=MAC),))
    vm.start()
    wait_marker(vm, x86_image)

    found = agent_addresses(vm)
    assert {a.source for a in found} == {"agent"}
    by_interface: dict[str, set[tuple[str, int | None]]] = {}
    for address in found:
        by_interface.setdefault(address.interface, set()).add((address.address, address.prefix))
    assert ("127.0.0.1", 8) in by_interface["lo"]
    nic = [a for a in found if a.mac == MAC]
    assert nic
    assert nic[0].interface.startswith("eth")
    assert by_interface[nic[0].interface] == {("192.0.2.10", 24)}
    # Sources are tried in the order given: the agent answers first, so later sources are not consulted.
    assert vm.addresses(["agent", "lease", "arp"]) == vm.addresses(["agent"])
    # The isolated network has no DHCP: the lease source knows nothing, and an empty answer is not an error.
    assert vm.addresses(["lease"]) == []
    vm.stop()


def test_disk_and_nic_hot_plug_reach_the_running_guest(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    vm = guests.create(x86_image, "plug")
    vm.start()
    wait_marker(vm, x86_image)
    agent_addresses(vm)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    assert "vdb" not in guest_disks(dom)

    target = vm.attach_disk(DiskSpec(size_mib=8, pool=POOL))
    assert target == "vdb"
    owned = vm.info().extra["owned_volumes"]
    guests.track_volume(vm, owned[-1])
    assert len(owned) == 2
    eventually(lambda: "vdb" in guest_disks(dom), timeout=30, what="vdb in the guest")

    mac = vm.attach_nic(NicSpec(network=NETWORK, mac=HOTPLUG_MAC))
    assert mac == HOTPLUG_MAC
    eventually(lambda: HOTPLUG_MAC in guest_macs(dom), timeout=30, what="the hot-plugged NIC in the guest")

    vm.detach_nic(HOTPLUG_MAC)
    eventually(lambda: HOTPLUG_MAC not in guest_macs(dom), timeout=30, what="the NIC gone from the guest")
    vm.detach_disk("vdb")
    eventually(lambda: "vdb" not in guest_disks(dom), timeout=30, what="vdb gone from the guest")
    assert vm.state() is PowerState.RUNNING
    devices = ET.fromstring(dom.XMLDesc(0)).find("devices")
    assert devices is not None
    assert HOTPLUG_MAC not in {mac.get("address") for mac in devices.iterfind("interface/mac")}
    assert "vdb" not in {target.get("dev") for target in devices.iterfind("disk/target")}

    vm.stop()
    footprint = guests.footprint(vm)
    vm.delete(storage=True)  # removes the hot-plugged volume too: polyvisor made it
    assert footprint.leftovers(libvirt_conn) == []
