"""What a libvirt connection can do: host capabilities, KVM usability, firmware, and declared features."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from polyvisor.model import Feature
from polyvisor_libvirt.kvmcheck import kvm_works

if TYPE_CHECKING:
    from polyvisor_libvirt.client import LibvirtClient

__all__ = [
    "DRIVER_FEATURES",
    "SCREEN_FEATURES",
    "Firmwares",
    "Guest",
    "HostCaps",
    "kvm_usable",
    "parse_capabilities",
    "probe_connection",
    "probe_firmware",
    "probe_screen",
    "read_host_caps",
]

F = Feature

_COMMON = frozenset({F.CREATE, F.LABELS, F.DELETE_STORAGE, F.DISK_ATTACH, F.NIC_ATTACH, F.READONLY_DISK, F.STATS})
_COMMON |= {F.STORAGE, F.POOL_WRITE, F.VOLUME_WRITE}  # every driver with storage pools lists and makes them
_QEMU = _COMMON | {
    F.PAUSE,
    F.SAVE,
    F.RESET,
    F.REBOOT,
    F.SHUTDOWN_ACPI,
    F.SHUTDOWN_AGENT,
    F.SNAPSHOTS,
    F.SNAPSHOT_MEMORY,
    F.SNAPSHOT_DESCRIPTION,
    F.DISK_HOTPLUG,
    F.NIC_HOTPLUG,
    F.GUEST_ADDRESSES,
    F.READINESS,
    F.DIRECT_KERNEL_BOOT,
    F.ACCELERATOR_CHOICE,
    # Provisioning: qemu-img makes overlays and copies, streams upload seeds, the balloon and vCPU hot-plug
    # change a running guest. No MEMORY_BUFFER: libvirt has no reserve above the balloon's target.
    F.DISK_CLONE_LINKED,
    F.DISK_CLONE_COPY,
    F.DISK_RESIZE,
    F.CLOUD_INIT,
    F.RECONFIGURE,
    F.RECONFIGURE_LIVE_CPUS,
    F.RECONFIGURE_LIVE_MEMORY,
    F.DYNAMIC_MEMORY,
    # Storage streams (sparse since libvirt 3.4) carry images both ways; virStorageVolResize grows volumes.
    F.IMAGE_UPLOAD,
    F.IMAGE_DOWNLOAD,
    F.VOLUME_RESIZE,
    # <interface type='user'>: QEMU's user-mode stack; its forwards are set through the monitor (.forwards).
    F.USER_NETWORKING,
}

DRIVER_FEATURES: dict[str, frozenset[Feature]] = {
    # The test driver: no ACPI/agent shutdown flags, no device hotplug (cold changes redefine the domain), and
    # fake guest addresses; managed save and memory snapshots work. Its storage pool records volumes with a
    # backing store and copies a pool volume (createXMLFrom), but cannot upload into a volume (so no cloud-init
    # seed, and a copy needs a base that is a pool volume) nor resize one (virStorageVolResize, blockResize);
    # setVcpusFlags and setMemoryFlags work on its running domains.
    "test": _COMMON
    | {
        F.PAUSE,
        F.SAVE,
        F.RESET,
        F.REBOOT,
        F.SNAPSHOTS,
        F.SNAPSHOT_MEMORY,
        F.SNAPSHOT_DESCRIPTION,
        F.GUEST_ADDRESSES,
        F.DIRECT_KERNEL_BOOT,
        F.DISK_CLONE_LINKED,
        F.DISK_CLONE_COPY,
        F.RECONFIGURE,
        F.RECONFIGURE_LIVE_CPUS,
        F.RECONFIGURE_LIVE_MEMORY,
        F.DYNAMIC_MEMORY,
    },
    "qemu": _QEMU,
    "kvm": _QEMU,
    "xen": _COMMON | {F.PAUSE, F.SAVE, F.REBOOT, F.DIRECT_KERNEL_BOOT, F.SHUTDOWN_ACPI},
    "libxl": _COMMON | {F.PAUSE, F.SAVE, F.REBOOT, F.DIRECT_KERNEL_BOOT, F.SHUTDOWN_ACPI},
    "lxc": _COMMON | {F.PAUSE, F.REBOOT},
    "ch": _COMMON | {F.PAUSE, F.REBOOT, F.DIRECT_KERNEL_BOOT},
    "bhyve": _COMMON | {F.REBOOT},
}
"""Features each driver is known to implement; probed features (events, networks, UEFI) are added at connect."""

NETWORK_FEATURES = frozenset(
    {F.NETWORKS, F.NETWORK_WRITE, F.NETWORK_ISOLATED, F.NETWORK_INTERNAL, F.NETWORK_NAT, F.NETWORK_ADDRESSES}
)
"""What a driver that lists networks also does: libvirt's network driver makes them (external ones are not made:
they bridge onto a host's own interfaces)."""


@dataclass(frozen=True, slots=True)
class Guest:
    """One ``<guest>`` entry of the host capabilities."""

    os_type: str
    arch: str
    domain_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HostCaps:
    """The parts of ``getCapabilities()`` polyvisor uses."""

    arch: str
    guests: tuple[Guest, ...]

    def guest_for(self, arch: str | None) -> Guest | None:
        """Return the guest entry for an architecture (the host's by default), preferring full virtualization."""
        wanted = arch or self.arch
        matches = [guest for guest in self.guests if guest.arch == wanted]
        matches.sort(key=lambda guest: guest.os_type != "hvm")
        return matches[0] if matches else None


def parse_capabilities(xml: str) -> HostCaps:
    """Parse the host capabilities XML."""
    root = ET.fromstring(xml)
    guests = []
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if arch is None:
            continue
        types = tuple(domain.get("type", "") for domain in arch.findall("domain"))
        guests.append(Guest(guest.findtext("os_type", ""), arch.get("name", ""), types))
    return HostCaps(arch=root.findtext("host/cpu/arch", ""), guests=tuple(guests))


def kvm_usable(conn: libvirt.virConnect, *, local: bool, arch: str) -> bool:
    """Return whether KVM works: domain capabilities say so AND (locally) ``/dev/kvm`` really runs guests.

    Domain capabilities alone are not trusted: they report kvm whenever the module is loaded, even where the
    device is not accessible or (nested) offers a vCPU no x86-64 guest boots on; :func:`kvm_works` checks that.
    """
    if local and not kvm_works():
        return False
    try:
        conn.getDomainCapabilities(None, arch, None, "kvm", 0)
    except libvirt.libvirtError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Firmwares:
    """UEFI support found in domain capabilities (and, locally, on disk)."""

    uefi: bool = False
    secure_boot: bool = False


def probe_firmware(conn: libvirt.virConnect, *, local: bool, arch: str, virt_type: str) -> Firmwares:
    """Return whether UEFI (and secure boot) firmware is available for ``arch``; loaders must exist locally."""
    try:
        xml = conn.getDomainCapabilities(None, arch, None, virt_type, 0)
    except libvirt.libvirtError:
        return Firmwares()
    root = ET.fromstring(xml)
    firmware_values = {value.text for value in root.findall("os/enum[@name='firmware']/value")}
    loaders = [value.text or "" for value in root.findall("os/loader/value")]
    if local:
        loaders = [path for path in loaders if Path(path).exists()]
    secure = {value.text for value in root.findall("os/loader/enum[@name='secure']/value")}
    uefi = "efi" in firmware_values and bool(loaders)
    secure_loaders = [path for path in loaders if "secboot" in path or ".ms." in path or "secure" in path.lower()]
    return Firmwares(uefi=uefi, secure_boot=uefi and "yes" in secure and bool(secure_loaders))


_SCREEN_OPTIONS = {
    "graphics": {"vnc": F.GRAPHICS_VNC, "spice": F.GRAPHICS_SPICE},
    "video": {
        "virtio": F.VIDEO_VIRTIO,
        "qxl": F.VIDEO_QXL,
        "vga": F.VIDEO_VGA,
        "bochs": F.VIDEO_BOCHS,
        "none": F.VIDEO_NONE,
    },
}
SCREEN_FEATURES = frozenset({F.GRAPHICS, F.SCREENSHOT, F.GRAPHICS_NONE, F.GRAPHICS_PASSWORD}) | {
    feature for table in _SCREEN_OPTIONS.values() for feature in table.values()
}
"""The screen's features some QEMU host may have; :func:`probe_screen` says which this one has."""


def probe_screen(conn: libvirt.virConnect, *, arch: str, virt_type: str) -> frozenset[Feature]:
    """The screen's features of QEMU here: the graphics types and video models its domain capabilities list (a
    QEMU built without SPICE lists no ``spice``; ``bochs`` needs QEMU's bochs-display), and always the calls."""
    try:
        xml = conn.getDomainCapabilities(None, arch, None, virt_type, 0)
    except libvirt.libvirtError:
        return frozenset()
    root = ET.fromstring(xml)
    found = {F.GRAPHICS, F.SCREENSHOT, F.GRAPHICS_NONE, F.GRAPHICS_PASSWORD}
    for value in root.findall("devices/graphics[@supported='yes']/enum[@name='type']/value"):
        found |= {_SCREEN_OPTIONS["graphics"][value.text]} if value.text in _SCREEN_OPTIONS["graphics"] else set()
    for value in root.findall("devices/video[@supported='yes']/enum[@name='modelType']/value"):
        found |= {_SCREEN_OPTIONS["video"][value.text]} if value.text in _SCREEN_OPTIONS["video"] else set()
    return frozenset(found)


def read_host_caps(client: LibvirtClient) -> HostCaps:
    """The host capabilities of the client's connection."""
    with client.errors("reading host capabilities", host=client.host):
        return parse_capabilities(client.conn.getCapabilities())


def probe_connection(client: LibvirtClient, caps: HostCaps) -> frozenset[Feature]:
    """The features of the client's driver on this host: the driver's known set, narrowed and extended by probes."""
    conn, uri = client.conn, client.uri
    features = set(DRIVER_FEATURES.get(uri.driver, frozenset({Feature.CREATE, Feature.LABELS})))
    if client.events.available:
        features.add(Feature.EVENTS)
    with contextlib.suppress(libvirt.libvirtError):
        conn.listAllNetworks()
        features |= NETWORK_FEATURES
    if uri.driver in ("qemu", "kvm"):
        virt_type = "kvm" if kvm_usable(conn, local=uri.is_local, arch=caps.arch) else "qemu"
        firmware = probe_firmware(conn, local=uri.is_local, arch=caps.arch, virt_type=virt_type)
        if firmware.uefi:
            features.add(Feature.UEFI)
        if firmware.secure_boot:
            features.add(Feature.SECURE_BOOT)
        features |= probe_screen(conn, arch=caps.arch, virt_type=virt_type)
        if uri.is_local:
            features.add(Feature.CONSOLE)
        # A console stream and agent requests travel over libvirt's RPC: a remote host serves them too.
        features |= {Feature.CONSOLE_STREAM, Feature.GUEST_EXEC, Feature.GUEST_FILES}
    try:
        conn.listAllStoragePools()
    except libvirt.libvirtError:
        # Without storage pools nothing can be made for a VM: no owned volumes, clones or seeds.
        features -= {Feature.DELETE_STORAGE, Feature.DISK_CLONE_LINKED, Feature.DISK_CLONE_COPY, Feature.CLOUD_INIT}
        features -= {Feature.STORAGE, Feature.POOL_WRITE, Feature.VOLUME_WRITE, Feature.VOLUME_RESIZE}
        features -= {Feature.IMAGE_UPLOAD, Feature.IMAGE_DOWNLOAD}
    if len({guest.arch for guest in caps.guests}) > 1:
        features.add(Feature.ARCHITECTURE_CHOICE)
    return frozenset(features)
