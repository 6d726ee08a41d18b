"""Support for tests that boot the tiny real guest under libvirtd (`qemu:///system`).

The environment comes from `scripts/libvirt-env start` (daemons, pool, isolated network) and
`scripts/build-guest-image [--arch ...]` (kernel, initramfs, manifest). Everything a test creates
is named with a per-test prefix starting with `pvtest-` so `cleanup()` can remove exactly it.
"""

from __future__ import annotations

import contextlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from polyvisor.testing import components, eventually

if TYPE_CHECKING:
    import libvirt

URI = os.environ.get("POLYVISOR_REALGUEST_URI", "qemu:///system")
POOL = "polyvisor-test"
NETWORK = "polyvisor-isolated"
TEST_PREFIX = "pvtest-"
GUEST_ROOT = Path(os.environ.get("POLYVISOR_GUEST_DIR", "/var/lib/libvirt/images/polyvisor-guest"))
# Serial logs live where libvirt-qemu may write; pytest's tmp_path (0700, root) is not such a place.
SERIAL_DIR = Path("/var/lib/libvirt/polyvisor-serial")
# libvirtd's per-domain QEMU logs outlive the domain; cleanup() removes the tests' ones too.
QEMU_LOG_DIR = Path("/var/log/libvirt/qemu")
SETUP_HINT = "run `scripts/libvirt-env start` and `scripts/build-guest-image --arch {arch}` as root"
# Guest features a test can require (the manifest's "features"); images built before them lack the key.
NOCLOUD_SEED = "nocloud-seed"
VIRTIO_BALLOON = "virtio-balloon"


@dataclass(frozen=True)
class GuestImage:
    """The tiny guest described by the manifest `scripts/build-guest-image` writes."""

    arch: str
    kernel: Path
    initrd: Path
    cmdline: str
    console: str
    marker: str
    machine: str
    cpu_model: str | None
    emulator: str
    agent_channel: str
    guest_version: int = 1
    features: frozenset[str] = frozenset()
    seed_marker: str = "polyvisor-seed: "

    @classmethod
    def load(cls, manifest: Path) -> GuestImage:
        """Read a manifest.json."""
        raw = json.loads(manifest.read_text())
        return cls(
            arch=raw["arch"],
            kernel=Path(raw["kernel"]),
            initrd=Path(raw["initrd"]),
            cmdline=raw["cmdline"],
            console=raw["console"],
            marker=raw["marker"],
            machine=raw["machine"],
            cpu_model=raw["cpu_model"],
            emulator=raw["emulator"],
            agent_channel=raw["agent_channel"],
            guest_version=raw.get("guest_version", 1),
            features=frozenset(raw.get("features", ())),
            seed_marker=raw.get("seed_marker", "polyvisor-seed: "),
        )


def unavailable(reason: str) -> NoReturn:
    """Fail under CI=true, otherwise skip: a missing real component must not pass silently."""
    components.unavailable(f"real-guest environment incomplete: {reason}")


def open_connection() -> libvirt.virConnect:
    """Connect to libvirtd, or fail/skip saying how to start it."""
    try:
        import libvirt
    except ImportError:
        unavailable("libvirt-python is not installed in this environment")
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as exc:
        unavailable(f"{URI} does not answer ({exc}); {SETUP_HINT.format(arch='x86_64')}")


def ensure_environment(arch: str = "x86_64", features: tuple[str, ...] = ()) -> GuestImage:
    """Check libvirtd, the pool, the isolated network and the built guest (with ``features``); return the guest."""
    conn = open_connection()
    try:
        import libvirt

        try:
            if not conn.storagePoolLookupByName(POOL).isActive():
                unavailable(f"storage pool {POOL} is not active; {SETUP_HINT.format(arch=arch)}")
            if not conn.networkLookupByName(NETWORK).isActive():
                unavailable(f"network {NETWORK} is not active; {SETUP_HINT.format(arch=arch)}")
        except libvirt.libvirtError as exc:
            unavailable(f"{exc}; {SETUP_HINT.format(arch=arch)}")
    finally:
        conn.close()
    manifest = GUEST_ROOT / arch / "manifest.json"
    if not manifest.exists():
        unavailable(f"no {arch} guest at {manifest}; {SETUP_HINT.format(arch=arch)}")
    image = GuestImage.load(manifest)
    if missing := sorted(set(features) - image.features):
        unavailable(
            f"the {arch} guest at {manifest} (guest_version {image.guest_version}) lacks {', '.join(missing)}: "
            f"it was built by an older scripts/build-guest-image; rebuild it with "
            f"`scripts/build-guest-image --arch {arch}` as root"
        )
    for needed in (image.kernel, image.initrd, Path(image.emulator)):
        if not needed.exists():
            unavailable(f"{needed} is missing; {SETUP_HINT.format(arch=arch)}")
    return image


def _ignore_missing(action: Callable[[], object]) -> None:
    import libvirt

    try:
        action()
    except libvirt.libvirtError as exc:
        # Already gone (or already inactive) is the state we want.
        if exc.get_error_code() not in (
            libvirt.VIR_ERR_NO_DOMAIN,
            libvirt.VIR_ERR_NO_NETWORK,
            libvirt.VIR_ERR_NO_STORAGE_VOL,
            libvirt.VIR_ERR_OPERATION_INVALID,
        ):
            raise


def cleanup(conn: libvirt.virConnect, prefix: str = TEST_PREFIX) -> None:
    """Destroy and undefine every domain, volume, network and log file named `prefix*`."""
    import libvirt

    if not prefix.startswith(TEST_PREFIX):
        raise ValueError(f"refusing to clean up names outside {TEST_PREFIX!r}: {prefix!r}")
    undefine_flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    for dom in conn.listAllDomains():
        if dom.name().startswith(prefix):
            if dom.isActive():
                _ignore_missing(dom.destroy)
            _ignore_missing(partial(dom.undefineFlags, undefine_flags))
    pool = conn.storagePoolLookupByName(POOL)
    # Refreshing fails while another client creates a volume in the pool; the tests' volumes are known anyway.
    with contextlib.suppress(libvirt.libvirtError):
        pool.refresh()
    for vol in pool.listAllVolumes():
        if vol.name().startswith(prefix):
            _ignore_missing(vol.delete)
    for net in conn.listAllNetworks():
        if net.name().startswith(prefix):
            if net.isActive():
                _ignore_missing(net.destroy)
            _ignore_missing(net.undefine)
    for directory in (SERIAL_DIR, QEMU_LOG_DIR):
        for log in directory.glob(f"{prefix}*"):
            log.unlink(missing_ok=True)


def serial_log_path(name: str) -> Path:
    """Return a fresh path for a domain's serial log (the directory is created if needed)."""
    SERIAL_DIR.mkdir(mode=0o755, exist_ok=True)
    path = SERIAL_DIR / f"{name}.serial.log"
    path.unlink(missing_ok=True)
    return path


def wait_for_marker(log: Path, marker: str, timeout: float = 60.0) -> None:
    """Wait until a line of the serial log contains `marker`."""

    def seen() -> bool:
        try:
            return any(marker in line for line in log.read_text(errors="replace").splitlines())
        except FileNotFoundError:
            return False

    try:
        eventually(seen, timeout=timeout, what=f"{marker!r} in {log}")
    except AssertionError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log file)"
        raise AssertionError(f"{exc}; serial log tail:\n{tail}") from None


def wait_for_state(dom: libvirt.virDomain, state: int, timeout: float = 30.0) -> None:
    """Wait until the domain reaches a libvirt state (e.g. VIR_DOMAIN_SHUTOFF)."""
    eventually(lambda: dom.state()[0] == state, timeout=timeout, what=f"{dom.name()} to reach state {state}")


def agent_command(dom: libvirt.virDomain, execute: str, timeout: int = 5) -> Any:
    """Run a guest-agent command through libvirt and return its `return` member."""
    import libvirt_qemu

    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": execute}), timeout, 0)
    return json.loads(reply)["return"]


def wait_for_agent(dom: libvirt.virDomain, timeout: float = 30.0) -> None:
    """Wait until the guest agent answers guest-ping."""
    import libvirt

    def pong() -> bool:
        try:
            agent_command(dom, "guest-ping", timeout=2)
        except libvirt.libvirtError:
            return False  # agent not connected yet
        return True

    eventually(pong, timeout=timeout, what=f"guest agent of {dom.name()}", interval=0.2)


def create_disk(conn: libvirt.virConnect, name: str, capacity_mib: int = 16) -> libvirt.virStorageVol:
    """Create a qcow2 volume `name` in the test pool."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="MiB").text = str(capacity_mib)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type="qcow2")
    pool = conn.storagePoolLookupByName(POOL)
    return pool.createXML(ET.tostring(vol, encoding="unicode"), 0)


def domain_xml(
    image: GuestImage,
    name: str,
    disk_volume: str,
    serial_log: Path,
    *,
    mac: str | None = None,
    memory_mib: int = 256,
    vcpus: int = 1,
) -> str:
    """Return domain XML for the tiny guest: TCG, direct kernel boot, serial to a file."""
    dom = ET.Element("domain", type="qemu")  # TCG: nested KVM is not usable on CI hosts
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu").text = str(vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=image.arch, machine=image.machine).text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(image.kernel)
    ET.SubElement(os_el, "initrd").text = str(image.initrd)
    ET.SubElement(os_el, "cmdline").text = image.cmdline
    features = ET.SubElement(dom, "features")
    if image.arch == "x86_64":
        # libvirt only allows ACPI on aarch64 with UEFI; the arm guest uses gpio-keys instead.
        ET.SubElement(features, "acpi")
    if image.cpu_model is not None:
        cpu = ET.SubElement(dom, "cpu", mode="custom", match="exact")
        ET.SubElement(cpu, "model", fallback="forbid").text = image.cpu_model
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "emulator").text = image.emulator
    disk = ET.SubElement(devices, "disk", type="volume", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", pool=POOL, volume=disk_volume)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "source", network=NETWORK)
    ET.SubElement(nic, "model", type="virtio")
    if mac is not None:
        ET.SubElement(nic, "mac", address=mac)
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_log))
    ET.SubElement(serial, "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=image.agent_channel)
    if image.arch == "x86_64":
        ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(dom, encoding="unicode")
