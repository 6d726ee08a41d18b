"""Guests of the architectures QEMU emulates beyond x86_64 and aarch64, created from the same spec with ``arch=``.

Each boots the project's tiny guest (``scripts/build-guest-image --arch ...``) under TCG to its ready marker, shows
the machine, console and buses the backend picked for it, answers through the guest agent (virtio-serial and
virtio-net work) and stops on the architecture's graceful request.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libvirt
import pytest

from polyvisor import DiskSpec, Feature, PowerState, ShutdownMode, UnsupportedError

from .pvguest import agent_addresses, wait_marker
from .support import POOL, ensure_environment

if TYPE_CHECKING:
    from .pvguest import Guests


Recorder = Callable[[str, object], None]


@dataclass(frozen=True)
class ArchCase:
    """What a guest of one architecture must show."""

    arch: str
    machine: str
    """The machine type's prefix (libvirt stores the canonical versioned name, e.g. ``pseries-7.2``)."""
    serial_target: str
    """The serial device libvirt gives the console, as ``<target type>/<model name>``."""
    shutdown: ShutdownMode | None
    """The graceful request the architecture's machine carries to its guest (None: none works, it is powered off)."""


CASES = [
    # pseries: SLOF firmware, the console on the spapr-vty, virtio on PCI; system_powerdown raises an EPOW event.
    ArchCase("ppc64le", "pseries", "spapr-vio-serial/spapr-vty", ShutdownMode.ACPI),
    # s390-ccw-virtio: the s390-ccw firmware, the console on the SCLP, virtio on channel I/O; system_powerdown is
    # a signal-quiesce.
    ArchCase("s390x", "s390-ccw-virtio", "sclp-serial/sclpconsole", ShutdownMode.ACPI),
    # riscv64 virt: OpenSBI, a 16550 UART, virtio on PCIe. No power button; and QEMU 7.2's sifive_test device, which
    # OpenSBI powers off through, exit()s QEMU without a SHUTDOWN event, so libvirt sees a crash (and the agent's
    # guest-shutdown an end of file): only a power-off stops it cleanly on this QEMU.
    ArchCase("riscv64", "virt", "system-serial/16550a", None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.arch)
def test_guest_of_the_architecture_boots_answers_and_stops(
    case: ArchCase, libvirt_conn: libvirt.virConnect, guests: Guests, record_property: Recorder
) -> None:
    image = ensure_environment(case.arch)
    # Two vCPUs: hot-pluggable where the machine plugs them (pseries, s390x), plain on riscv64's virt machine.
    vm = guests.create(image, case.arch, cpus=2)
    assert vm.info().extra["arch"] == case.arch
    root = ET.fromstring(libvirt_conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
    os_type = root.find("os/type")
    assert os_type is not None
    assert os_type.get("arch") == case.arch
    assert (os_type.get("machine") or "").startswith(case.machine)
    target = root.find("devices/serial/target")
    model = root.find("devices/serial/target/model")
    assert target is not None
    assert model is not None
    assert f"{target.get('type')}/{model.get('name')}" == case.serial_target
    buses = {disk.get("bus") for disk in root.iterfind("devices/disk/target")}
    assert buses == {"virtio"}

    started = time.monotonic()
    vm.start()
    wait_marker(vm, image, timeout=240)
    boot_s = time.monotonic() - started
    # The agent's view of the NIC: its MAC, and the TEST-NET-1 address the guest's /init gave it.
    mac = root.find("devices/interface/mac")
    assert mac is not None
    reported = {(address.mac, address.address) for address in agent_addresses(vm, timeout=60)}
    assert (mac.get("address"), "192.0.2.10") in reported

    started = time.monotonic()
    graceful = {Feature.SHUTDOWN_ACPI, Feature.SHUTDOWN_AGENT}
    if case.shutdown is None:
        # Declared: the VM's capabilities leave both graceful modes out, and shutdown() is refused at once.
        assert not vm.capabilities().features & graceful
        with pytest.raises(UnsupportedError, match=rf"{case.arch} guests cannot be shut down gracefully"):
            vm.shutdown(timeout=120)
        assert vm.state() is PowerState.RUNNING
        status = vm.stop()
    else:
        assert vm.capabilities().features >= graceful
        status = vm.shutdown(mode=case.shutdown, timeout=120)
        assert status.reason == "shutdown"
    shutdown_s = time.monotonic() - started
    assert status.state is PowerState.STOPPED
    footprint = guests.footprint(vm)
    vm.delete(storage=True)
    assert footprint.leftovers(libvirt_conn) == []
    record_property("boot_s", round(boot_s, 2))
    record_property("shutdown_s", round(shutdown_s, 2))
    how = case.shutdown.value if case.shutdown else "power-off"
    print(f"{case.arch}: marker {boot_s:.2f} s, {how} stop {shutdown_s:.2f} s")


def test_what_the_architecture_cannot_carry_is_refused_before_anything_is_made(
    libvirt_conn: libvirt.virConnect, guests: Guests
) -> None:
    image = ensure_environment("s390x")
    volumes = set(libvirt_conn.storagePoolLookupByName(POOL).listVolumes())
    with pytest.raises(UnsupportedError, match=r"s390x guests .* cannot have a sata disk \(disks\[1\]\)") as raised:
        guests.create(
            image, "sata", disks=(DiskSpec(size_mib=8, pool=POOL), DiskSpec(size_mib=8, pool=POOL, bus="sata"))
        )
    assert raised.value.feature is None
    assert not [name for name in libvirt_conn.listDefinedDomains() if name.startswith(guests.prefix)]
    libvirt_conn.storagePoolLookupByName(POOL).refresh(0)
    assert set(libvirt_conn.storagePoolLookupByName(POOL).listVolumes()) <= volumes  # no volume was made
