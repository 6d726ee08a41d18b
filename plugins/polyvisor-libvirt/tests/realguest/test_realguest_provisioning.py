"""Provisioning real guests through polyvisor: linked clones of one base, address waits, reconfigure, resize.

What the guest sees is read through its agent with raw libvirt (files under /dev, /sys and /proc, vCPU lists),
independently of the code under test; what reached the disks is read on the host with qemu-img.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from polyvisor import VM, DiskSpec, PowerState, TimeoutError, ValidationError
from polyvisor.metrics import VMStats
from polyvisor.testing import eventually

from .pvguest import wait_marker
from .support import POOL, create_disk

if TYPE_CHECKING:
    import libvirt

    from .pvguest import Guests
    from .support import GuestImage


def agent(dom: libvirt.virDomain, execute: str, timeout: int = 10, **arguments: Any) -> Any:
    """Run a guest-agent command with arguments; return its `return` member."""
    import libvirt_qemu

    command: dict[str, Any] = {"execute": execute}
    if arguments:
        command["arguments"] = arguments
    return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(command), timeout, 0))["return"]


def wait_agent(dom: libvirt.virDomain, timeout: float = 60.0) -> None:
    import libvirt

    def pong() -> bool:
        try:
            agent(dom, "guest-ping", timeout=2)
        except libvirt.libvirtError:
            return False
        return True

    eventually(pong, timeout=timeout, what=f"the agent of {dom.name()}", interval=0.2)


def guest_read(dom: libvirt.virDomain, path: str, count: int = 4096) -> bytes:
    """Read a file in the guest through the agent."""
    handle = agent(dom, "guest-file-open", path=path, mode="r")
    try:
        return base64.b64decode(agent(dom, "guest-file-read", handle=handle, count=count)["buf-b64"])
    finally:
        agent(dom, "guest-file-close", handle=handle)


def guest_write(dom: libvirt.virDomain, path: str, data: bytes) -> None:
    """Write bytes at the start of a file (here: a block device) in the guest, flushed."""
    handle = agent(dom, "guest-file-open", path=path, mode="r+")
    try:
        agent(dom, "guest-file-write", handle=handle, **{"buf-b64": base64.b64encode(data).decode()})
        agent(dom, "guest-file-flush", handle=handle)
    finally:
        agent(dom, "guest-file-close", handle=handle)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def first_bytes(image: str, tmp: Path, count: int) -> bytes:
    """The first bytes of a disk image's guest-visible content (through its backing chain)."""
    raw = tmp / (Path(image).name + ".raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", image, str(raw)], check=True)
    return raw.read_bytes()[:count]


def test_linked_clones_of_one_base_keep_their_writes_apart_and_the_base_untouched(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage, name_prefix: str, tmp_path: Path
) -> None:
    base = create_disk(libvirt_conn, f"{name_prefix}base.qcow2", capacity_mib=16).path()
    before = sha256(base)
    vms = [
        guests.create(x86_image, tag, disks=(DiskSpec(image=base, clone="linked", pool=POOL),))
        for tag in ("clone-a", "clone-b")
    ]
    overlays = [vm.info().extra["owned_volumes"][0] for vm in vms]
    assert base not in overlays
    for vm in vms:
        vm.start()
    marks = {}
    for vm in vms:
        wait_marker(vm, x86_image)
        dom = libvirt_conn.lookupByUUIDString(vm.uuid)
        wait_agent(dom)
        marks[vm.uuid] = f"POLYVISOR-CLONE {vm.name}\n".encode().ljust(512, b".")
        guest_write(dom, "/dev/vda", marks[vm.uuid])
        assert guest_read(dom, "/dev/vda", 512) == marks[vm.uuid]
        # The agent's address of the NIC on the isolated network (the guest's init gives it 192.0.2.10).
        address = vm.wait_for_address(timeout=30)
        assert (address.source, address.address) == ("agent", "192.0.2.10")
    for vm in vms:
        vm.stop()

    assert sha256(base) == before  # QEMU opened the base read-only
    for vm, overlay in zip(vms, overlays, strict=True):
        assert first_bytes(overlay, tmp_path, 512) == marks[vm.uuid]
    assert first_bytes(base, tmp_path, 512) == bytes(512)

    footprint = guests.footprint(vms[0])
    vms[0].delete(storage=True)
    assert footprint.leftovers(libvirt_conn) == []
    assert Path(base).exists()
    assert sha256(base) == before
    assert first_bytes(overlays[1], tmp_path, 512) == marks[vms[1].uuid]  # the other clone still reads its data


def test_an_address_wait_without_an_agent_explains_each_source(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    vm = guests.create(x86_image, "noagent")
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    root = ET.fromstring(dom.XMLDesc(0))
    devices = root.find("devices")
    assert devices is not None
    for channel in devices.findall("channel"):
        devices.remove(channel)  # a VM defined without the guest agent's channel
    libvirt_conn.defineXML(ET.tostring(root, encoding="unicode"))
    mac = root.find("devices/interface/mac").get("address")  # type: ignore[union-attr]
    vm.start()
    wait_marker(vm, x86_image)
    with pytest.raises(TimeoutError) as caught:
        vm.wait_for_address(timeout=2)
    message = str(caught.value)
    assert "agent: agent not configured" in message, message
    assert f"lease: no lease for {mac} on network polyvisor-isolated (it serves no DHCP)" in message, message
    # libvirt reads ARP entries over netlink, which some hosts (containers) refuse: either answer explains itself.
    assert f"arp: no ARP entry for {mac}" in message or "arp: cannot read the host's ARP table" in message, message
    vm.stop()


def offline_vcpu(dom: libvirt.virDomain, logical_id: int) -> bool:
    """Ask the guest to take a vCPU offline; False while its kernel answers "busy" (it still brings CPUs up)."""
    import libvirt

    try:
        agent(dom, "guest-set-vcpus", vcpus=[{"logical-id": logical_id, "online": False}])
    except libvirt.libvirtError as error:
        if "busy" not in str(error):
            raise
        return False
    return True


def guest_vcpus(dom: libvirt.virDomain) -> list[bool]:
    """Each logical CPU the guest has, online or not."""
    return [bool(cpu["online"]) for cpu in agent(dom, "guest-get-vcpus")]


def guest_mem_total_mib(dom: libvirt.virDomain) -> int:
    for line in guest_read(dom, "/proc/meminfo").decode().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in the guest's /proc/meminfo")


def guest_disk_mib(dom: libvirt.virDomain, name: str = "vda") -> int:
    return int(guest_read(dom, f"/sys/block/{name}/size").decode()) * 512 // (1024 * 1024)


def check_balloon_statistics(vm: VM, dom: libvirt.virDomain) -> None:
    """The guest's balloon reports its free memory once polyvisor's first sample has set a statistics period.

    Without a period the driver reports once, when it loads: the first sample sees only that boot-time snapshot,
    which never changes, and leaves it out."""
    first = vm.stats()
    assert first.memory.usable_bytes is None
    assert "polyvisor set a 5 s period" in (first.why_missing("memory.usable_bytes") or "")
    balloon = ET.fromstring(dom.XMLDesc(0)).find("devices/memballoon/stats")
    assert balloon is not None, "polyvisor left the running domain's balloon without a statistics period"
    assert balloon.get("period") == "5"

    def reported() -> VMStats | None:
        sample = vm.stats()
        return sample if sample.memory.usable_bytes is not None else None

    sample = eventually(reported, timeout=30, what="the guest's balloon driver to report its memory", interval=0.5)
    memory = sample.memory
    assert memory.unused_bytes is not None
    assert memory.usable_bytes is not None
    assert memory.current_bytes is not None
    assert 0 < memory.unused_bytes <= memory.usable_bytes <= memory.current_bytes
    assert sample.why_missing("memory.usable_bytes") is None


def test_reconfigure_cold_and_live_and_resize_reach_the_guest(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_balloon_image: GuestImage
) -> None:
    x86_image = x86_balloon_image
    vm = guests.create(x86_image, "size", cpus=1, memory_mib=256)
    info = vm.reconfigure(cpus=2, memory_mib=320)
    assert (info.cpus, info.memory_mib) == (2, 320)
    vm.resize_disk("vda", 24)  # stopped: the pool volume grows
    with pytest.raises(ValidationError, match="disk vda is 24 MiB; resize_disk only grows: ask for more than 24"):
        vm.resize_disk("vda", 20)

    vm.start()
    wait_marker(vm, x86_image)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    wait_agent(dom)
    assert len(guest_vcpus(dom)) == 2
    booted_mib = guest_mem_total_mib(dom)
    check_balloon_statistics(vm, dom)
    assert 256 < booted_mib <= 320
    assert guest_disk_mib(dom) == 24

    vm.resize_disk("vda", 40)  # running: QEMU grows it and the guest's virtio-blk sees the new capacity
    eventually(lambda: guest_disk_mib(dom) == 40, timeout=30, what="the guest to see vda at 40 MiB")

    with pytest.raises(ValidationError, match="at most 2 vCPU"):
        vm.reconfigure(cpus=3)
    # A live unplug: QEMU asks the guest to eject the vCPU (ACPI). libvirt waits 5 s for the eject, and the TCG
    # guest can take longer (offlining the vCPU first through the agent helps): then the call raises TimeoutError
    # and the unplug completes on its own, as the hypervisor reports afterwards.
    eventually(lambda: offline_vcpu(dom, 1), timeout=30, what="the guest to take vCPU 1 offline")
    try:
        vm.reconfigure(cpus=1)
        outcome = "unplugged"
    except TimeoutError as error:
        outcome = str(error)
    assert outcome == "unplugged" or "vcpu unplug request timed out" in outcome, outcome
    eventually(lambda: len(guest_vcpus(dom)) == 1, timeout=60, what="the guest to lose a vCPU")
    with pytest.raises(ValidationError, match="at most 320 MiB"):
        vm.reconfigure(memory_mib=512)
    # A live memory change inflates the balloon: the guest's virtio_balloon driver gives the pages back, and its
    # MemTotal falls by them.
    assert vm.reconfigure(memory_mib=256).memory_mib <= 320  # the balloon's size now, on its way to 256
    eventually(lambda: vm.info().memory_mib == 256, timeout=60, what="the balloon to reach 256 MiB")
    eventually(
        lambda: guest_mem_total_mib(dom) <= booted_mib - 48, timeout=60, what="the guest to give 64 MiB to the balloon"
    )
    assert vm.state() is PowerState.RUNNING
    vm.stop()
