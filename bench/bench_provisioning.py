#!/usr/bin/env python3
"""Create-from-image to a reachable address: polyvisor against the libvirt-python sequence a user would write.

    bench/bench_provisioning.py [--uri qemu:///system] [--runs 5]

Each run makes a linked clone of one base image, uploads a cloud-init seed, defines and starts the tiny test guest
(scripts/build-guest-image) and waits until its agent reports a usable IPv4 address: polyvisor's
``create(spec) + start() + wait_for_address()`` against the raw sequence (volume with a backing store, seed volume
+ upload stream, defineXML, create, poll interfaceAddresses(AGENT)). Runs alternate; medians are printed with the
ratio. Then the bytes each clone mode writes to the pool: a linked clone against a copy of a base holding data.
Needs `scripts/libvirt-env start`; everything it makes is named `pvtest-bench-*` and removed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

import polyvisor
from polyvisor import DiskSpec, KernelBoot, NicSpec, VMSpec
from polyvisor.model import GuestAddress
from polyvisor.provisioning import CloudInit, build_seed_iso
from polyvisor.provisioning.addresses import AddressFamily, usable

POOL = "polyvisor-test"
NETWORK = "polyvisor-isolated"
GUEST = Path("/var/lib/libvirt/images/polyvisor-guest/x86_64/manifest.json")
PREFIX = "pvtest-bench-"


def volume_xml(name: str, capacity: int, fmt: str, backing: str | None = None) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(ET.SubElement(vol, "target"), "format", type=fmt)
    if backing:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type="qcow2")
    return ET.tostring(vol, encoding="unicode")


def raw_run(conn: libvirt.virConnect, guest: dict[str, str], base: str, name: str) -> float:
    """The sequence a libvirt-python user writes; returns seconds to a usable address."""
    started = time.monotonic()
    pool = conn.storagePoolLookupByName(POOL)
    size = pool.storageVolLookupByName(Path(base).name).info()[1]
    disk = pool.createXML(volume_xml(f"{name}.qcow2", size, "qcow2", backing=base), 0)
    iso = build_seed_iso(CloudInit(instance_id=name, local_hostname="bench"))
    seed = pool.createXML(volume_xml(f"{name}-seed.iso", len(iso), "raw"), 0)
    stream = conn.newStream(0)
    seed.upload(stream, 0, len(iso), 0)
    stream.send(iso)
    stream.finish()
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "256"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    ET.SubElement(os_el, "kernel").text = guest["kernel"]
    ET.SubElement(os_el, "initrd").text = guest["initrd"]
    ET.SubElement(os_el, "cmdline").text = guest["cmdline"]
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    devices = ET.SubElement(dom, "devices")
    for path, device, fmt, target, bus in ((disk.path(), "disk", "qcow2", "vda", "virtio"),
                                           (seed.path(), "cdrom", "raw", "sda", "sata")):  # fmt: skip
        element = ET.SubElement(devices, "disk", type="file", device=device)
        ET.SubElement(element, "driver", name="qemu", type=fmt)
        ET.SubElement(element, "source", file=path)
        ET.SubElement(element, "target", dev=target, bus=bus)
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "source", network=NETWORK)
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(ET.SubElement(devices, "serial", type="pty"), "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    domain = conn.defineXML(ET.tostring(dom, encoding="unicode"))
    domain.create()
    delay = 0.25
    while True:
        try:
            found = domain.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0)
        except libvirt.libvirtError:
            found = {}
        addresses = [GuestAddress(n, d.get("hwaddr"), a["addr"], a.get("prefix"), "agent")
                     for n, d in found.items() for a in d.get("addrs") or []]  # fmt: skip
        if any(usable(a, AddressFamily.IPV4) for a in addresses):
            return time.monotonic() - started
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def polyvisor_run(conn: polyvisor.Connection, guest: dict[str, str], base: str, name: str) -> float:
    started = time.monotonic()
    vm = conn.create(
        VMSpec(
            name=name,
            memory_mib=256,
            accelerator="tcg",
            kernel=KernelBoot(guest["kernel"], guest["initrd"], guest["cmdline"]),
            disks=(DiskSpec(image=base, clone="linked", pool=POOL),),
            nics=(NicSpec(network=NETWORK),),
            cloud_init=CloudInit(instance_id=name, local_hostname="bench"),
        )
    )
    vm.start()
    vm.wait_for_address(timeout=120)
    took = time.monotonic() - started
    vm.stop()
    vm.delete(storage=True)
    return took


def remove(conn: libvirt.virConnect) -> None:
    for dom in conn.listAllDomains():
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    pool = conn.storagePoolLookupByName(POOL)
    for vol in pool.listAllVolumes():
        if vol.name().startswith(PREFIX):
            vol.delete(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    guest = json.loads(GUEST.read_text())
    raw = libvirt.open(args.uri)
    pool = raw.storagePoolLookupByName(POOL)
    remove(raw)
    base = pool.createXML(volume_xml(f"{PREFIX}base.qcow2", 64 << 20, "qcow2"), 0).path()
    # 32 MiB of data in the base, so a copy has something to copy.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 32M", base], check=True, capture_output=True)
    times: dict[str, list[float]] = {"polyvisor": [], "libvirt-python": []}
    try:
        with polyvisor.connect(args.uri) as conn:
            for run in range(args.runs):
                # Uploads and boots share the host: alternate, so drift hits both alike.
                for label in ("polyvisor", "libvirt-python") if run % 2 == 0 else ("libvirt-python", "polyvisor"):
                    name = f"{PREFIX}{label[:2]}{run}-{uuid.uuid4().hex[:6]}"
                    if label == "polyvisor":
                        times[label].append(polyvisor_run(conn, guest, base, name))
                    else:
                        times[label].append(raw_run(raw, guest, base, name))
                        remove_one(raw, name)
            mine, theirs = statistics.median(times["polyvisor"]), statistics.median(times["libvirt-python"])
            print(f"create-from-image to a usable address, median of {args.runs} (TCG guest):")
            print(f"  polyvisor       {mine:6.2f} s   {[round(t, 2) for t in times['polyvisor']]}")
            print(f"  libvirt-python  {theirs:6.2f} s   {[round(t, 2) for t in times['libvirt-python']]}")
            print(f"  ratio polyvisor / libvirt-python: {mine / theirs:.3f}x")
            written = {}
            for mode in ("linked", "copy"):
                vm = conn.create(VMSpec(name=f"{PREFIX}{mode}", disks=(DiskSpec(image=base, clone=mode, pool=POOL),)))
                path = vm.info().extra["owned_volumes"][0]
                written[mode] = raw.storageVolLookupByPath(path).info()[2]
                vm.delete(storage=True)
            print("bytes written to the pool for one 64 MiB clone of a base holding 32 MiB:")
            for mode, count in written.items():
                print(f"  {mode:7s} {count:>12,d} bytes")
    finally:
        remove(raw)
        raw.close()


def remove_one(conn: libvirt.virConnect, name: str) -> None:
    dom = conn.lookupByName(name)
    dom.destroy()
    dom.undefine()
    pool = conn.storagePoolLookupByName(POOL)
    for vol in pool.listAllVolumes():
        if vol.name().startswith(name):
            vol.delete(0)


if __name__ == "__main__":
    main()
