"""The device sections of a domain polyvisor writes for a spec's devices, built with ElementTree and read back.

* A TPM is ``<tpm model=...><backend type='emulator' version='2.0'/></tpm>``: libvirt runs swtpm for it and keeps
  its state with the domain (removed when the domain is undefined). Without a model libvirt picks the device the
  guest's machine has (tpm-tis or tpm-crb on x86, tpm-spapr on pseries).
* Nested virtualization is ``<cpu mode='host-passthrough'/>``: the guest sees the host's CPU, VT-x or AMD-V included
  when the host's KVM offers it (libvirt.org, "CPU model and topology": host-passthrough exposes the host CPU "with
  all its features").
* A host device is ``<hostdev mode='subsystem' type='pci|usb' managed='yes'>`` with its source address (PCI
  domain, bus, slot, function; USB vendor, product, bus and device), and the node device's name is recorded under
  :data:`DEVICES_NS` so ``info()`` names it as :meth:`polyvisor.Connection.host_devices` does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from polyvisor.model import HostDeviceKind

__all__ = [
    "DEVICES_NS",
    "DEVICES_PREFIX",
    "DeviceFacts",
    "Hostdev",
    "hostdev_element",
    "hostdev_matches",
    "names_element",
    "parse_device_facts",
    "tpm_element",
]

DEVICES_NS = "https://polyvisor.dev/xmlns/devices/1"
"""Where the names of the host devices polyvisor gave a domain are kept (``<hostdev name="..."/>``)."""
DEVICES_PREFIX = "polyvisor-devices"
ET.register_namespace(DEVICES_PREFIX, DEVICES_NS)


@dataclass(frozen=True, slots=True)
class Hostdev:
    """A host device as a domain's ``<hostdev>`` names it: a PCI address, or a USB device's ids and address."""

    name: str
    kind: HostDeviceKind
    pci: tuple[int, int, int, int] | None = None
    """(domain, bus, slot, function)"""
    usb_ids: tuple[str, str] | None = None
    """(vendor, product), as ``0x0781``"""
    usb_address: tuple[int, int] | None = None
    """(bus, device)"""


def tpm_element(version: str, model: str | None) -> ET.Element:
    """``<tpm>`` with the emulator backend (swtpm) of this TPM version."""
    element = ET.Element("tpm", {"model": model} if model else {})
    ET.SubElement(element, "backend", {"type": "emulator", "version": version})
    return element


def hostdev_element(device: Hostdev) -> ET.Element:
    """``<hostdev>`` for one host device, managed by libvirt (detached from its host driver while the VM runs)."""
    element = ET.Element("hostdev", {"mode": "subsystem", "type": device.kind.value, "managed": "yes"})
    source = ET.SubElement(element, "source")
    if device.pci is not None:
        domain, bus, slot, function = device.pci
        ET.SubElement(
            source,
            "address",
            {
                "domain": f"0x{domain:04x}",
                "bus": f"0x{bus:02x}",
                "slot": f"0x{slot:02x}",
                "function": f"0x{function:x}",
            },
        )
    if device.usb_ids is not None:
        ET.SubElement(source, "vendor", {"id": device.usb_ids[0]})
        ET.SubElement(source, "product", {"id": device.usb_ids[1]})
    if device.usb_address is not None:
        ET.SubElement(source, "address", {"bus": str(device.usb_address[0]), "device": str(device.usb_address[1])})
    return element


def names_element(names: tuple[str, ...]) -> ET.Element:
    """The metadata element recording the node device names of a domain's host devices."""
    root = ET.Element(f"{{{DEVICES_NS}}}hostdevs")
    for name in names:
        ET.SubElement(root, f"{{{DEVICES_NS}}}hostdev", {"name": name})
    return root


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What a domain's XML says about its devices."""

    tpm_version: str | None = None
    nested: bool = False
    host_devices: tuple[str, ...] = ()
    """The names polyvisor recorded."""
    hostdevs: tuple[Hostdev, ...] = ()
    """Every ``<hostdev>`` of the domain, whoever defined it (unnamed when polyvisor did not)."""


def _number(text: str | None) -> int | None:
    try:
        return int(text or "", 0)
    except ValueError:
        return None


def _hostdev(element: ET.Element) -> Hostdev | None:
    kind = element.get("type")
    source = element.find("source")
    if source is None or kind not in ("pci", "usb"):
        return None
    address = source.find("address")
    if kind == "pci":
        if address is None:
            return None
        parts = tuple(_number(address.get(key)) for key in ("domain", "bus", "slot", "function"))
        if any(part is None for part in parts):
            return None
        return Hostdev("", HostDeviceKind.PCI, pci=parts)  # type: ignore[arg-type]  # checked just above
    vendor, product = source.find("vendor"), source.find("product")
    ids = (vendor.get("id", ""), product.get("id", "")) if vendor is not None and product is not None else None
    where = None
    if address is not None:
        bus, device = _number(address.get("bus")), _number(address.get("device"))
        where = (bus, device) if bus is not None and device is not None else None
    return Hostdev("", HostDeviceKind.USB, usb_ids=ids, usb_address=where)


def hostdev_matches(used: Hostdev, device: Hostdev) -> bool:
    """Whether a domain's ``<hostdev>`` is this host device: the same PCI address, or for USB the same address when
    both have one, else the same vendor and product."""
    if used.kind is not device.kind:
        return False
    if used.kind is HostDeviceKind.PCI:
        return used.pci == device.pci
    if used.usb_address is not None and device.usb_address is not None:
        return used.usb_address == device.usb_address
    return used.usb_ids is not None and used.usb_ids == device.usb_ids


def parse_device_facts(root: ET.Element) -> DeviceFacts:
    """Read the TPM, the CPU mode and the host devices of a parsed ``<domain>``."""
    backend = root.find("devices/tpm/backend")
    version = None
    if backend is not None:
        version = backend.get("version") or ("2.0" if backend.get("type") == "emulator" else None)
    cpu = root.find("cpu")
    nested = cpu is not None and (
        cpu.get("mode") == "host-passthrough"
        or any(f.get("name") in ("vmx", "svm") and f.get("policy") in ("require", "force") for f in cpu.iter("feature"))
    )
    names = tuple(
        element.get("name", "")
        for element in root.iterfind(f"metadata/{{{DEVICES_NS}}}hostdevs/{{{DEVICES_NS}}}hostdev")
        if element.get("name")
    )
    hostdevs = tuple(found for element in root.iterfind("devices/hostdev") if (found := _hostdev(element)) is not None)
    return DeviceFacts(version, nested, names, hostdevs)
