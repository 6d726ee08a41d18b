"""What each architecture's QEMU machine offers, and the refusal of a spec asking for more.

polyvisor gives every architecture the machine its guests usually run on (q35 on x86, virt on arm and riscv64,
pseries on ppc64, s390-ccw-virtio on s390x). The table says what each machine can carry, as QEMU 7.2 and libvirt
9.0 on Debian 12 show it: a request for more is refused, naming the architecture and the reason, before a volume
is made or a domain defined (libvirt would otherwise accept some of it and fail at start, or refuse it with a
message that names no architecture).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from polyvisor.errors import UnsupportedError
from polyvisor.model import DiskBus, Feature, Firmware, VMSpec

__all__ = ["MACHINES", "Machine", "lacking", "machine_of", "refuse_default_shutdown", "refuse_unsupported"]


@dataclass(frozen=True, slots=True)
class Machine:
    """One architecture's QEMU machine and what it can carry."""

    name: str
    firmware: str
    """What boots it, as the refusals name it."""
    disk_buses: frozenset[DiskBus]
    uefi: bool
    """Whether a UEFI firmware exists for the machine at all (whether it is installed is probed)."""
    secure_boot: bool
    """Whether polyvisor's secure boot (UEFI with SMM) applies."""
    cpu_hotplug: bool
    """Whether QEMU plugs vCPUs into the running machine (libvirt then needs hot-pluggable ``<vcpus>``)."""
    tcg_cpu_model: str | None = None
    """The CPU model under TCG when QEMU's default does not boot a 64-bit guest."""
    lacks: Mapping[Feature, str] = field(default_factory=lambda: MappingProxyType({}))
    """Features a VM of this architecture does not have though the connection declares them, each with the reason:
    its VMs' capabilities (:meth:`polyvisor.VM.capabilities`) leave them out, and the host's facts list them."""


_PCI_BUSES = frozenset({DiskBus.VIRTIO, DiskBus.SCSI, DiskBus.SATA})  # AHCI on PCI(e); no IDE controller

MACHINES: dict[str, Machine] = {
    # q35: AHCI, no IDE ("IDE controllers are unsupported for this QEMU binary or machine type").
    "x86_64": Machine("q35", "SeaBIOS or OVMF", _PCI_BUSES, uefi=True, secure_boot=True, cpu_hotplug=True),
    "i686": Machine("q35", "SeaBIOS or OVMF", _PCI_BUSES, uefi=True, secure_boot=True, cpu_hotplug=True),
    # virt: no CPU hot-plug in QEMU 7.2 (libvirt: "vcpu '1' is missing hotplug data").
    "aarch64": Machine(
        "virt", "AAVMF (UEFI)", _PCI_BUSES, uefi=True, secure_boot=False, cpu_hotplug=False, tcg_cpu_model="cortex-a57"
    ),
    "armv7l": Machine("virt", "U-Boot or UEFI", _PCI_BUSES, uefi=True, secure_boot=False, cpu_hotplug=False),
    # virt (QEMU 7.2) has no power button, and a guest powers off through OpenSBI's sifive_test device, which ends
    # QEMU with exit() and no SHUTDOWN event: libvirt records a crash. Neither graceful path works; stop() does.
    "riscv64": Machine(
        "virt",
        "OpenSBI",
        _PCI_BUSES,
        uefi=True,
        secure_boot=False,
        cpu_hotplug=False,
        lacks=MappingProxyType(
            {
                Feature.SHUTDOWN_ACPI: "QEMU's riscv64 virt machine has no ACPI power button",
                Feature.SHUTDOWN_AGENT: (
                    "a riscv64 guest powers off through OpenSBI's sifive_test device, which ends QEMU 7.2 without a "
                    "shutdown event, so libvirt records a crash"
                ),
            }
        ),
    ),
    # pseries: SLOF (Open Firmware); PAPR has no UEFI.
    "ppc64le": Machine("pseries", "SLOF", _PCI_BUSES, uefi=False, secure_boot=False, cpu_hotplug=True),
    "ppc64": Machine("pseries", "SLOF", _PCI_BUSES, uefi=False, secure_boot=False, cpu_hotplug=True),
    # s390-ccw-virtio: virtio on channel I/O, no AHCI ("SATA is not supported with this QEMU binary"), no UEFI.
    "s390x": Machine(
        "s390-ccw-virtio",
        "the s390-ccw loader",
        frozenset({DiskBus.VIRTIO, DiskBus.SCSI}),
        uefi=False,
        secure_boot=False,
        cpu_hotplug=True,
    ),
}


def machine_of(arch: str) -> Machine | None:
    """The machine polyvisor gives ``arch``'s guests, or None (libvirt's default, nothing refused here)."""
    return MACHINES.get(arch)


def refuse_unsupported(spec: VMSpec, arch: str, *, host: str | None = None) -> None:
    """Raise :class:`UnsupportedError` for the first thing in ``spec`` the architecture's machine cannot carry."""
    machine = machine_of(arch)
    if machine is None:
        return

    def refuse(what: str, feature: Feature | None, instead: str) -> None:
        raise UnsupportedError(
            f"{arch} guests (machine {machine.name}, booted by {machine.firmware}) cannot have {what}; {instead}",
            feature=feature,
            host=host,
            vm=spec.name,
        )

    buses = ", ".join(sorted(bus.value for bus in machine.disk_buses))
    for index, disk in enumerate(spec.disks):
        if disk.bus not in machine.disk_buses:
            refuse(f"a {disk.bus.value} disk (disks[{index}])", None, f"use one of: {buses}")
    if spec.firmware is Firmware.UEFI and not machine.uefi:
        refuse("UEFI firmware", Feature.UEFI, "leave firmware unset (the machine's own firmware)")
    if spec.secure_boot and not machine.secure_boot:
        refuse("secure boot", Feature.SECURE_BOOT, "leave secure_boot off (polyvisor's secure boot is x86's)")


def lacking(arch: str) -> Mapping[Feature, str]:
    """The features ``arch``'s VMs do not have, each with the reason (empty for an architecture not in the table)."""
    machine = machine_of(arch)
    return machine.lacks if machine is not None else MappingProxyType({})


def refuse_default_shutdown(arch: str, *, host: str | None = None, vm: str | None = None) -> None:
    """Raise :class:`UnsupportedError` when ``arch``'s VMs have no graceful shutdown at all (neither ACPI nor the
    agent), so that ``shutdown()`` is refused with the reason rather than waited out until its timeout."""
    lacks = lacking(arch)
    if Feature.SHUTDOWN_ACPI in lacks and Feature.SHUTDOWN_AGENT in lacks:
        reasons = "; ".join(lacks[feature] for feature in (Feature.SHUTDOWN_ACPI, Feature.SHUTDOWN_AGENT))
        raise UnsupportedError(
            f"{arch} guests cannot be shut down gracefully here ({reasons}); use stop() to power the VM off",
            feature=Feature.SHUTDOWN_ACPI,
            host=host,
            vm=vm,
        )
