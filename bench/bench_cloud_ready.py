#!/usr/bin/env python3
"""Create-from-image to ready (cloud-init finished) for the real cloud guest: polyvisor against the hand-written way.

    bench/bench_cloud_ready.py [--uri qemu:///system] [--runs 5]

The guest is scripts/build-cloud-image's Debian 12 cloud image (cloud kernel, cloud-init, qemu-guest-agent). Each run
makes a linked clone of its disk, a NoCloud seed with the same user-data, meta-data and network-config, boots it
under TCG and waits until cloud-init has written ``/run/cloud-init/result.json``:

- polyvisor: ``create(spec)``, ``start()``, ``wait_until_ready()``;
- by hand, as a libvirt user would: ``cloud-localds`` (cloud-image-utils) writes the seed ISO, a volume with the
  image as its backing store, an upload stream for the seed, ``defineXML`` (virtio disk, the seed on a virtio-scsi
  CD-ROM, which Debian's cloud kernel can see, the agent channel), ``create()``, then the agent asked once a second
  for the result file.

The image is read once beforehand (a warm page cache for every run) and runs alternate, so drift on the host hits
both alike; medians and their ratio are printed (target: at most 1.05x).
Needs `scripts/libvirt-env start` and the built image; everything it makes is named `pvtest-bench-cloud-*` and
removed, also when a run fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
from bench_provisioning import volume_xml  # the same volume XML as the tiny guest's bench (bench/ is on sys.path)

import polyvisor
from polyvisor import CloneMode, DiskSpec, NicSpec, VMSpec
from polyvisor.provisioning import CloudInit

POOL = "polyvisor-test"
NETWORK = "polyvisor-isolated"
MANIFEST = Path("/var/lib/libvirt/images/polyvisor-guest/debian12-cloud/manifest.json")
PREFIX = "pvtest-bench-cloud-"
RESULT = "/run/cloud-init/result.json"
READY_TIMEOUT = 600.0
USER_DATA = (
    "#cloud-config\n"
    "write_files:\n"
    "  - path: /run/bench/written\n"
    "    content: written by cloud-init\n"
    "runcmd:\n"
    '  - echo "runcmd ran on $(hostname)" > /run/bench/runcmd\n'
)


def network_config(mac: str, address: str) -> dict[str, Any]:
    """A static address (the isolated network has no DHCP)."""
    return {
        "version": 2,
        "ethernets": {"nic0": {"match": {"macaddress": mac}, "addresses": [f"{address}/24"], "dhcp4": False}},
    }


def seed_for(name: str, mac: str, address: str) -> CloudInit:
    """The seed both sides give the guest."""
    return CloudInit(
        instance_id=f"iid-{name}",
        local_hostname="bench-cloud",
        user_data=USER_DATA,
        network_config=network_config(mac, address),
    )


def polyvisor_run(conn: polyvisor.Connection, disk: str, name: str, mac: str, address: str) -> float:
    started = time.monotonic()
    vm = conn.create(
        VMSpec(
            name=name,
            memory_mib=1024,
            cpus=1,
            arch="x86_64",
            accelerator="tcg",
            disks=(DiskSpec(image=disk, clone=CloneMode.LINKED, pool=POOL),),
            nics=(NicSpec(network=NETWORK, mac=mac),),
            cloud_init=seed_for(name, mac, address),
        )
    )
    try:
        vm.start()
        ready = vm.wait_until_ready(timeout=READY_TIMEOUT)
        took = time.monotonic() - started
        if ready.errors or not all("DataSourceNoCloud" in answer.detail for answer in ready.answers):
            raise RuntimeError(f"{name}: cloud-init did not finish with the seed: {ready}")
        return took
    finally:
        vm.ensure("stopped", force=True)
        vm.delete(storage=True)


def hand_run(raw: libvirt.virConnect, disk: str, name: str, mac: str, address: str) -> float:
    """The sequence a libvirt-python user writes with cloud-localds; returns seconds to cloud-init's result."""
    seed = seed_for(name, mac, address)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=PREFIX) as scratch:
        work = Path(scratch)
        assert seed.user_data is not None
        (work / "user-data").write_text(seed.user_data)
        (work / "meta-data").write_text(f"instance-id: {seed.instance_id}\nlocal-hostname: {seed.local_hostname}\n")
        # JSON is YAML: cloud-init reads it as the version 2 document it is.
        (work / "network-config").write_text(json.dumps(network_config(mac, address)))
        iso_path = work / "seed.iso"
        subprocess.run(
            ["cloud-localds", f"--network-config={work / 'network-config'}", str(iso_path), *_seed_files(work)],
            check=True,
            capture_output=True,
        )
        iso = iso_path.read_bytes()
    pool = raw.storagePoolLookupByName(POOL)
    size = json.loads(MANIFEST.read_text())["virtual_size_mib"] << 20
    clone = pool.createXML(volume_xml(f"{name}.qcow2", size, "qcow2", backing=disk), 0)
    seed_volume = pool.createXML(volume_xml(f"{name}-seed.iso", len(iso), "raw"), 0)
    stream = raw.newStream(0)
    seed_volume.upload(stream, 0, len(iso), 0)
    stream.send(iso)
    stream.finish()
    dom = raw.defineXML(_domain_xml(name, clone.path(), seed_volume.path(), mac))
    dom.create()
    deadline = started + READY_TIMEOUT
    while time.monotonic() < deadline:
        if (result := _agent_read(dom, RESULT)) is not None:
            took = time.monotonic() - started
            # Only a run whose cloud-init read this seed counts (DataSourceNone would finish sooner).
            v1 = json.loads(result)["v1"]
            if v1["errors"] or not str(v1["datasource"]).startswith("DataSourceNoCloud"):
                raise RuntimeError(f"{name}: cloud-init did not finish with the seed: {v1}")
            return took
        time.sleep(1.0)
    raise TimeoutError(f"{name}: no {RESULT} after {READY_TIMEOUT:g} s")


def _seed_files(work: Path) -> list[str]:
    return [str(work / "user-data"), str(work / "meta-data")]


def _domain_xml(name: str, disk: str, seed: str, mac: str) -> str:
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "1024"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="q35").text = "hvm"
    ET.SubElement(os_el, "boot", dev="hd")
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for path, device, fmt, target, bus in (
        (disk, "disk", "qcow2", "vda", "virtio"),
        (seed, "cdrom", "raw", "sda", "scsi"),
    ):
        element = ET.SubElement(devices, "disk", type="file", device=device)
        ET.SubElement(element, "driver", name="qemu", type=fmt)
        ET.SubElement(element, "source", file=path)
        ET.SubElement(element, "target", dev=target, bus=bus)
        if device == "cdrom":
            ET.SubElement(element, "readonly")
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "mac", address=mac)
    ET.SubElement(nic, "source", network=NETWORK)
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(ET.SubElement(devices, "serial", type="pty"), "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    return ET.tostring(dom, encoding="unicode")


def _agent_read(dom: libvirt.virDomain, path: str) -> bytes | None:
    """The file's bytes through the guest agent, or None while the agent or the file is not there yet."""
    try:
        handle = _agent(dom, "guest-file-open", path=path, mode="r")
    except libvirt.libvirtError:
        return None
    try:
        data = b""
        while True:
            chunk = _agent(dom, "guest-file-read", handle=handle, count=65536)
            data += base64.b64decode(chunk.get("buf-b64", ""))
            if chunk.get("eof") or not chunk.get("count"):
                return data
    finally:
        _agent(dom, "guest-file-close", handle=handle)


def _agent(dom: libvirt.virDomain, execute: str, **arguments: object) -> dict[str, object]:
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": execute, "arguments": arguments}), 5, 0)
    answer: dict[str, object] = json.loads(reply)["return"]
    return answer


def remove(raw: libvirt.virConnect) -> None:
    """Remove every domain and volume named with the prefix."""
    for dom in raw.listAllDomains():
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    pool = raw.storagePoolLookupByName(POOL)
    pool.refresh()
    for vol in pool.listAllVolumes():
        if vol.name().startswith(PREFIX):
            vol.delete(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    disk = json.loads(MANIFEST.read_text())["disk"]
    # Read the image once, so the page cache is as warm for the first run as for the others, whoever goes first.
    with open(disk, "rb") as image:
        while image.read(1 << 20):
            pass
    raw = libvirt.open(args.uri)
    remove(raw)
    times: dict[str, list[float]] = {"polyvisor": [], "by hand": []}
    try:
        with polyvisor.connect(args.uri) as conn:
            for run in range(args.runs):
                for label in ("polyvisor", "by hand") if run % 2 == 0 else ("by hand", "polyvisor"):
                    name = f"{PREFIX}{label[:2]}{run}-{uuid.uuid4().hex[:6]}"
                    mac, address = f"52:54:00:be:{run:02x}:01", f"198.51.100.{10 + run}"
                    if label == "polyvisor":
                        times[label].append(polyvisor_run(conn, disk, name, mac, address))
                    else:
                        try:
                            times[label].append(hand_run(raw, disk, name, mac, address))
                        finally:
                            remove(raw)
    finally:
        remove(raw)
        raw.close()
    mine, theirs = statistics.median(times["polyvisor"]), statistics.median(times["by hand"])
    print(f"create-from-image to ready (cloud-init finished), median of {args.runs} (Debian 12 cloud guest, TCG):")
    print(f"  polyvisor  {mine:6.2f} s   {[round(t, 2) for t in times['polyvisor']]}")
    print(f"  by hand    {theirs:6.2f} s   {[round(t, 2) for t in times['by hand']]}  (cloud-localds, libvirt-python)")
    print(f"  ratio polyvisor / by hand: {mine / theirs:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    main()
