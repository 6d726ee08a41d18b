"""Planning a domain from a spec, without a libvirt connection: every host fact comes in as a value.

The backend resolves what needs the host (the capabilities, whether KVM works, disk volumes, networks) and hands
the results here; these functions choose the guest entry, the domain type, the machine, disk targets and the rest
of a :class:`~polyvisor_libvirt.domainxml.DomainPlan`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence

from polyvisor.errors import UnsupportedError
from polyvisor.model import DiskBus, Feature, Firmware, VMSpec
from polyvisor_libvirt import domainxml, machines
from polyvisor_libvirt.domainxml import DiskDevice, DomainPlan, NicDevice
from polyvisor_libvirt.probe import Guest, HostCaps

__all__ = [
    "QEMU_DRIVERS",
    "cdrom_bus",
    "check_spec",
    "choose_domain_type",
    "choose_guest",
    "disk_target",
    "plan_domain",
]

QEMU_DRIVERS = ("qemu", "kvm")
# q35 attaches PCIe devices to root ports and libvirt adds only one spare: keep a few free for hot-plug.
_HOTPLUG_PORTS = 4
_BUILTIN_PCIE = 4  # USB, virtio-serial, balloon and one to spare for what a libvirt version adds


def choose_guest(caps: HostCaps, spec: VMSpec, *, host: str | None = None) -> Guest:
    """Return the host's guest entry for the spec's architecture (the host's own by default)."""
    guest = caps.guest_for(spec.arch.value if spec.arch else None)
    if guest is None:
        have = sorted({g.arch for g in caps.guests})
        raise UnsupportedError(
            f"this host cannot run {spec.arch or caps.arch} guests; it offers {', '.join(have)}",
            feature=Feature.ARCHITECTURE_CHOICE,
            host=host,
            vm=spec.name,
        )
    return guest


def choose_domain_type(
    spec: VMSpec, guest: Guest, *, driver: str, kvm_usable: Callable[[], bool], host: str | None = None
) -> str:
    """Return the domain type: the driver's first one, or for QEMU "kvm" when asked for or usable, else "qemu".

    ``kvm_usable`` is asked only when KVM is a candidate (it may cost a probe of the host).
    """
    if driver not in QEMU_DRIVERS:
        return guest.domain_types[0]
    if spec.accelerator == "tcg":
        return "qemu"
    kvm = "kvm" in guest.domain_types and kvm_usable()
    if spec.accelerator == "kvm" and not kvm:
        raise UnsupportedError(
            "KVM is not usable on this host: no kvm domain type, /dev/kvm missing or inaccessible, or a "
            "KVM vCPU without the x86-64 baseline (as under some nested virtualization, where guests hang "
            "at boot); use accelerator='tcg' or leave it unset",
            feature=Feature.ACCELERATOR_CHOICE,
            host=host,
            vm=spec.name,
        )
    return "kvm" if kvm else "qemu"


def check_spec(spec: VMSpec, guest: Guest, *, driver: str, host: str | None = None) -> None:
    """Refuse what the architecture's QEMU machine cannot carry (see :mod:`.machines`), before anything is made."""
    if driver in QEMU_DRIVERS:
        machines.refuse_unsupported(spec, guest.arch, host=host)


def machine_for(guest: Guest, *, driver: str) -> str | None:
    """The QEMU machine type (q35 on x86, see :mod:`.machines`), or None to leave libvirt's default."""
    if driver not in QEMU_DRIVERS:
        return None
    machine = machines.machine_of(guest.arch)
    return machine.name if machine is not None else None


def disk_target(bus: DiskBus, counters: MutableMapping[DiskBus, int]) -> str:
    """The target name of the next disk on ``bus``, counted in ``counters``; SCSI and SATA disks share the "sd"
    names, numbered in the order they come."""
    names = DiskBus.SCSI if bus is DiskBus.SATA else bus
    position = counters.get(names, 0)
    counters[names] = position + 1
    return domainxml.target_name(bus, position)


def cdrom_bus(machine: str | None, *, driver: str) -> DiskBus:
    """The bus a CD-ROM goes on: SCSI (on a virtio-scsi controller) on every QEMU machine, IDE elsewhere.

    A seed must be where stock cloud kernels see it. Debian's cloud kernel (the genericcloud images' one) has
    neither AHCI (q35's SATA: ``# CONFIG_SATA_AHCI is not set``) nor the LSI SCSI controllers libvirt picks by
    default (``# CONFIG_SCSI_SYM53C8XX_2 is not set``, ``# CONFIG_FUSION is not set``), but it has
    ``CONFIG_SCSI_VIRTIO`` and ``CONFIG_BLK_DEV_SR``, as every distribution's virtual-machine kernel does.
    """
    del machine  # the same on pc, q35 and virt
    return DiskBus.SCSI if driver in QEMU_DRIVERS else DiskBus.IDE


def plan_domain(
    spec: VMSpec,
    guest: Guest,
    *,
    uuid: str,
    domain_type: str,
    driver: str,
    is_local: bool,
    disk_sources: Sequence[tuple[str, str]],
    networks: Sequence[str | None],
    seed: str | None = None,
) -> DomainPlan:
    """Return the plan for ``spec``.

    ``disk_sources`` holds the (path, format) of each of ``spec.disks`` in order, ``networks`` the network name
    of each of ``spec.nics`` (None for a user-mode NIC); a disk with a ``size_mib`` or a ``clone`` was made for
    this VM and is recorded as owned (a clone's base never is). ``seed`` is the cloud-init seed volume (owned
    too), attached as a read-only CD-ROM after ``spec.cdrom``.

    Memory: ``<memory>`` is the most the VM may have (``dynamic_memory.maximum_mib``, else ``memory_mib``) and
    ``<currentMemory>`` what it starts with (``memory_mib``); the balloon moves between them. vCPUs: the maximum is
    the spec's ``cpus`` (no hidden headroom: a guest sees no CPUs it was not given), so a live change can lower the
    count and raise it back.
    """
    if len(disk_sources) != len(spec.disks) or len(networks) != len(spec.nics):
        raise ValueError("one disk source per disk and one network per NIC")
    qemu = driver in QEMU_DRIVERS
    machine = machine_for(guest, driver=driver)
    # Emulated (TCG) CPUs of other architectures default to models guests may not boot on (QEMU's virt
    # machine picks a 32-bit cortex-a15); name a baseline 64-bit model instead.
    profile = machines.machine_of(guest.arch)
    cpu_model = profile.tcg_cpu_model if profile is not None and qemu and domain_type == "qemu" else None
    counters: dict[DiskBus, int] = {}
    disks: list[DiskDevice] = []
    owned: list[str] = []
    for disk, (path, fmt) in zip(spec.disks, disk_sources, strict=True):
        if disk.size_mib is not None or disk.clone is not None:
            owned.append(path)
        target = disk_target(disk.bus, counters)
        disks.append(DiskDevice(path, target, disk.bus.value, fmt, readonly=disk.readonly))
    cdroms = [path for path in (spec.cdrom, seed) if path is not None]
    for path in cdroms:
        bus = cdrom_bus(machine, driver=driver)
        target = disk_target(bus, counters)
        disks.append(DiskDevice(path, target, bus.value, "raw", device="cdrom", readonly=True))
    if seed is not None:
        owned.append(seed)
    memory = spec.dynamic_memory
    nics = tuple(
        NicDevice(network, nic.mac, nic.model, nic.forwards) for nic, network in zip(spec.nics, networks, strict=True)
    )
    serial_log = f"/var/log/libvirt/qemu/{uuid}-serial.log" if qemu and is_local else None
    # libvirt would add an emulated LSI controller for SCSI devices, which cloud kernels lack (see cdrom_bus).
    scsi_controller = "virtio-scsi" if qemu and any(disk.bus == DiskBus.SCSI.value for disk in disks) else None
    return DomainPlan(
        uuid=uuid,
        name=spec.name,
        domain_type=domain_type,
        os_type=guest.os_type,
        arch=guest.arch,
        cpus=spec.cpus,
        memory_mib=memory.maximum_mib if memory is not None else spec.memory_mib,
        current_memory_mib=spec.memory_mib,
        memory_minimum_mib=memory.minimum_mib if memory is not None else None,
        # Only where QEMU plugs vCPUs into the machine: elsewhere libvirt refuses to start hot-pluggable ones.
        hotpluggable_cpus=qemu and profile is not None and profile.cpu_hotplug,
        machine=machine,
        disks=tuple(disks),
        nics=nics,
        boot_order=spec.boot_order,
        description=spec.description,
        labels=spec.labels,
        owned_volumes=tuple(owned),
        kernel=spec.kernel,
        uefi=spec.firmware is Firmware.UEFI,
        secure_boot=spec.secure_boot,
        acpi=qemu and guest.arch in ("x86_64", "i686"),
        serial_log=serial_log,
        guest_agent=qemu,
        cpu_model=cpu_model,
        scsi_controller=scsi_controller,
        graphics=spec.graphics,
        video=spec.video,
        # Listed ports serve the defined devices first (NICs, virtio disks, the SCSI controller, and libvirt's own
        # USB, virtio-serial and balloon controllers); what remains is free for hot-plug.
        hotplug_ports=(
            len(disks) + len(nics) + (scsi_controller is not None) + _BUILTIN_PCIE + _HOTPLUG_PORTS
            if machine == "q35"
            else 0
        ),
    )
