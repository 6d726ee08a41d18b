"""Real guests through polyvisor's public API: specs from the manifest, console waits, leftover checks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from polyvisor import VM, Connection, DiskSpec, KernelBoot, NicSpec, VMSpec
from polyvisor.testing import eventually

from .support import NETWORK, POOL, GuestImage

HEARTBEAT = re.compile(r"POLYVISOR-HEARTBEAT (\d+)")
# Kernel command-line words the test guest's /init honours (scripts/build-guest-image).
NO_ACPID = "polyvisor.noacpid"
WITH_HEARTBEAT = "polyvisor.heartbeat"
# A "stubborn" guest: logs IGNORED_MARKER for each ACPI power-button press or agent guest-shutdown and keeps running.
SHUTDOWN_IGNORE = "polyvisor.shutdown=ignore"
IGNORED_MARKER = "POLYVISOR-SHUTDOWN-IGNORED"


def guest_spec(image: GuestImage, name: str, *, cmdline: str = "", **overrides: Any) -> VMSpec:
    """The tiny guest as a VMSpec: direct kernel boot, TCG, a new qcow2 disk, a NIC on the isolated network."""
    fields: dict[str, Any] = {
        "name": name,
        "memory_mib": 256,
        "arch": image.arch,
        "accelerator": "tcg",
        "kernel": KernelBoot(str(image.kernel), str(image.initrd), f"{image.cmdline} {cmdline}".strip()),
        "disks": (DiskSpec(size_mib=16, pool=POOL),),
        "nics": (NicSpec(network=NETWORK),),
    }
    fields.update(overrides)
    return VMSpec(**fields)


def wait_console(vm: VM, found: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
    """Wait until ``found(console_output)``; return the output. The assertion shows the console's tail."""

    def probe() -> str | None:
        text = vm.console_output()
        return text if found(text) else None

    try:
        return eventually(probe, timeout=timeout, what=what, interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; console tail:\n{vm.console_output()[-1500:]}") from None


def wait_marker(vm: VM, image: GuestImage, timeout: float = 60.0) -> float:
    """Wait for the ready marker; return the seconds it took."""
    started = time.monotonic()
    wait_console(vm, lambda text: image.marker in text, f"{image.marker} from {vm!r}", timeout)
    return time.monotonic() - started


def heartbeats(text: str) -> list[int]:
    """The heartbeat numbers in console output, in order."""
    return [int(n) for n in HEARTBEAT.findall(text)]


def wait_heartbeat_lines(vm: VM, after: int, more: int = 2, timeout: float = 30.0) -> list[int]:
    """Wait until ``more`` heartbeat lines follow the first ``after`` ones; return every number seen."""
    text = wait_console(vm, lambda t: len(heartbeats(t)) >= after + more, f"{more} new heartbeats", timeout)
    return heartbeats(text)


def agent_addresses(vm: VM, timeout: float = 30.0) -> list[Any]:
    """Wait until the guest agent reports addresses (it starts just before the marker); return them."""
    return eventually(
        lambda: vm.addresses(["agent"]) or None, timeout=timeout, what=f"agent addresses of {vm!r}", interval=0.2
    )


@dataclass
class Footprint:
    """What a VM leaves on the host: its domain, its volumes and its serial log."""

    uuid: str
    volumes: tuple[str, ...]
    serial_logs: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, raw: libvirt.virConnect, vm: VM) -> Footprint:
        """Read a VM's footprint from libvirt (while it exists)."""
        volumes = tuple(vm.info().extra["owned_volumes"])
        xml = raw.lookupByUUIDString(vm.uuid).XMLDesc(0)
        logs = tuple(re.findall(r"<log file='([^']+)'", xml))
        return cls(vm.uuid, volumes, logs)

    def domain_exists(self, raw: libvirt.virConnect) -> bool:
        """Return whether libvirt still knows the domain."""
        try:
            raw.lookupByUUIDString(self.uuid)
        except libvirt.libvirtError:
            return False
        return True

    @staticmethod
    def volume_exists(raw: libvirt.virConnect, path: str) -> bool:
        """Return whether a volume is still known to libvirt or on disk."""
        # No pool refresh: it fails while another client creates volumes in the same pool.
        try:
            raw.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            return Path(path).exists()
        return True

    def leftovers(self, raw: libvirt.virConnect) -> list[str]:
        """Everything of the VM still defined or on disk."""
        out = [f"domain {self.uuid}"] if self.domain_exists(raw) else []
        out += [f"volume {path}" for path in self.volumes if self.volume_exists(raw, path)]
        out += [f"serial log {path}" for path in self.serial_logs if Path(path).exists()]
        return out

    def remove(self, raw: libvirt.virConnect) -> None:
        """Remove whatever is left (test cleanup, also after failures)."""
        try:
            dom = raw.lookupByUUIDString(self.uuid)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            )
        except libvirt.libvirtError:
            pass  # already gone
        for path in self.volumes:
            try:
                raw.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError:
                Path(path).unlink(missing_ok=True)
        for path in self.serial_logs:
            Path(path).unlink(missing_ok=True)


class Guests:
    """Creates guests through polyvisor and removes every trace of them afterwards, even after a failure."""

    def __init__(self, conn: Connection, raw: libvirt.virConnect, prefix: str) -> None:
        self.conn = conn
        self.raw = raw
        self.prefix = prefix
        self.footprints: dict[str, Footprint] = {}

    def create(self, image: GuestImage, tag: str, *, cmdline: str = "", **overrides: Any) -> VM:
        """Create (not start) a guest named ``<prefix><tag>``."""
        return self.track(self.conn.create(guest_spec(image, f"{self.prefix}{tag}", cmdline=cmdline, **overrides)))

    def track(self, vm: VM) -> VM:
        """Remember a guest created some other way (e.g. from a conformance spec file) for cleanup."""
        self.footprints[vm.uuid] = Footprint.of(self.raw, vm)
        return vm

    def track_volume(self, vm: VM, path: str) -> None:
        """Remember a volume made after create (a hot-plugged disk) for cleanup."""
        old = self.footprints[vm.uuid]
        self.footprints[vm.uuid] = Footprint(old.uuid, (*old.volumes, path), old.serial_logs)

    def footprint(self, vm: VM) -> Footprint:
        """The recorded footprint of a guest."""
        return self.footprints[vm.uuid]

    def remove_all(self) -> None:
        """Remove every guest made (and what they left)."""
        for footprint in self.footprints.values():
            footprint.remove(self.raw)


@contextmanager
def guests(conn: Connection, raw: libvirt.virConnect, prefix: str) -> Iterator[Guests]:
    """A :class:`Guests` that is cleaned up on exit."""
    made = Guests(conn, raw, prefix)
    try:
        yield made
    finally:
        made.remove_all()
