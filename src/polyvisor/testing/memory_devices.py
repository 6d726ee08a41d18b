"""The devices of a ``memory://`` host that VMs can be given, with the same rules as the real backends.

Every host starts with one PCI device (a graphics card at ``0000:03:00.0``, named ``pci_0000_03_00_0`` as libvirt
names node devices) and one USB device (a flash drive at bus 1, device 4: ``usb_1_4``); a test adds more with
:meth:`MemoryDevices.add`. A device belongs to at most one VM: the VM's spec named it (``VMSpec.host_devices``),
and it is free again once the VM is deleted. The listing names the VM that has each one (``used_by``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from polyvisor.errors import InUseError
from polyvisor.model import Feature, HostDevice, HostDeviceKind
from polyvisor.testing.faults import Instrumented

__all__ = ["DEFAULT_DEVICES", "DEVICE_FEATURES", "DevicePrimitives", "MemoryDevices"]

DEVICE_FEATURES = frozenset(
    {Feature.TPM, Feature.NESTED_VIRTUALIZATION, Feature.PCI_PASSTHROUGH, Feature.USB_PASSTHROUGH}
)
"""The device options of a spec ``memory://`` takes (``host-devices`` is :class:`DevicePrimitives`' method)."""

DEFAULT_DEVICES = (
    HostDevice("pci_0000_03_00_0", HostDeviceKind.PCI, "modelled graphics card", "0000:03:00.0", "0x10de", "0x1eb8"),
    HostDevice("usb_1_4", HostDeviceKind.USB, "modelled USB flash drive", "001:004", "0x0781", "0x5567"),
)
"""The devices every ``memory://`` host starts with."""


class MemoryDevices:
    """The passable devices of one in-memory host; ``users()`` maps each device name to the VM that has it."""

    def __init__(self, host: str, users: Callable[[], dict[str, str]], lock: threading.RLock) -> None:
        self._host = host
        self._users = users
        self._lock = lock
        self._devices = {device.name: device for device in DEFAULT_DEVICES}

    def add(self, device: HostDevice) -> None:
        """Give the host another device."""
        with self._lock:
            self._devices[device.name] = device

    def list(self) -> list[HostDevice]:
        with self._lock:
            users = self._users()
            return [
                HostDevice(d.name, d.kind, d.description, d.address, d.vendor, d.product, users.get(d.name), d.extra)
                for d in sorted(self._devices.values(), key=lambda device: device.name)
            ]

    def claim(self, names: tuple[str, ...], vm: str) -> None:
        """Check, under the host's lock, that each device exists and no VM has it (a race the core cannot see)."""
        with self._lock:
            users = self._users()
            for name in names:
                if name not in self._devices:
                    raise InUseError(f"the host has no device named {name!r} any more", users=(), host=self._host)
                if name in users:
                    raise InUseError(
                        f"host device {name!r} is already given to VM {users[name]!r}; {vm!r} cannot have it too",
                        users=(users[name],),
                        host=self._host,
                    )


class _DeviceHost(Protocol):
    name: str
    devices: MemoryDevices


class DevicePrimitives(Instrumented):
    """The device primitives of :class:`~polyvisor.testing.memory.MemoryBackend` (recorded, faults obeyed)."""

    host: _DeviceHost

    def host_devices(self) -> list[HostDevice]:
        return self.host.devices.list()
