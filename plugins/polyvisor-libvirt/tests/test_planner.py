"""The planner: spec -> domain plan from host facts given as values; no libvirt connection anywhere here."""

from __future__ import annotations

import pytest

from polyvisor import DiskSpec, NicSpec, UnsupportedError, VMSpec
from polyvisor.model import Feature
from polyvisor_libvirt import domainxml, machines, planner
from polyvisor_libvirt.probe import Guest, HostCaps

X86 = Guest("hvm", "x86_64", ("qemu", "kvm"))
ARM = Guest("hvm", "aarch64", ("qemu",))
CAPS = HostCaps("x86_64", (X86, ARM))


def _never() -> bool:
    raise AssertionError("KVM was probed although it is no candidate")


def test_the_host_architecture_is_the_default_and_others_are_refused_with_the_feature() -> None:
    assert planner.choose_guest(CAPS, VMSpec(name="a")) is X86
    assert planner.choose_guest(CAPS, VMSpec(name="a", arch="aarch64")) is ARM
    with pytest.raises(UnsupportedError) as caught:
        planner.choose_guest(HostCaps("x86_64", (X86,)), VMSpec(name="a", arch="aarch64"), host="h")
    assert caught.value.feature is Feature.ARCHITECTURE_CHOICE
    assert "x86_64" in caught.value.message


def test_domain_type_probes_kvm_only_when_it_is_a_candidate() -> None:
    spec = VMSpec(name="a")
    assert (
        planner.choose_domain_type(VMSpec(name="a", accelerator="tcg"), X86, driver="qemu", kvm_usable=_never) == "qemu"
    )
    assert planner.choose_domain_type(spec, ARM, driver="qemu", kvm_usable=_never) == "qemu"
    assert (
        planner.choose_domain_type(spec, Guest("hvm", "x86_64", ("test",)), driver="test", kvm_usable=_never) == "test"
    )
    assert planner.choose_domain_type(spec, X86, driver="qemu", kvm_usable=lambda: True) == "kvm"
    assert planner.choose_domain_type(spec, X86, driver="qemu", kvm_usable=lambda: False) == "qemu"
    with pytest.raises(UnsupportedError) as caught:
        planner.choose_domain_type(VMSpec(name="a", accelerator="kvm"), X86, driver="kvm", kvm_usable=lambda: False)
    assert caught.value.feature is Feature.ACCELERATOR_CHOICE


def test_a_q35_plan_names_targets_per_bus_puts_the_cdrom_on_virtio_scsi_and_keeps_hotplug_ports() -> None:
    spec = VMSpec(
        name="full",
        disks=[DiskSpec(size_mib=16), DiskSpec(image="/img/a.qcow2", bus="scsi"), DiskSpec(size_mib=8, bus="sata")],
        nics=[NicSpec(network="n1"), NicSpec(network="n2", mac="52:54:00:00:00:02")],
        cdrom="/img/boot.iso",
    )
    sources = [("/pool/v0.qcow2", "qcow2"), ("/img/a.qcow2", "qcow2"), ("/pool/v2.img", "raw")]
    plan = planner.plan_domain(
        spec,
        X86,
        uuid="u-1",
        domain_type="kvm",
        driver="qemu",
        is_local=True,
        disk_sources=sources,
        networks=["n1", "n2"],
    )
    assert [(d.target, d.bus, d.device) for d in plan.disks] == [
        ("vda", "virtio", "disk"),
        ("sda", "scsi", "disk"),
        ("sdb", "sata", "disk"),  # SCSI and SATA share the sd names, in order
        ("sdc", "scsi", "cdrom"),  # where cloud kernels see it: they have no AHCI
    ]
    assert plan.scsi_controller == "virtio-scsi"  # not libvirt's default LSI, which cloud kernels lack either
    assert plan.owned_volumes == ("/pool/v0.qcow2", "/pool/v2.img")  # the image the user brought is not owned
    assert [(n.network, n.mac) for n in plan.nics] == [("n1", None), ("n2", "52:54:00:00:00:02")]
    assert (plan.machine, plan.acpi, plan.guest_agent, plan.cpu_model) == ("q35", True, True, None)
    assert plan.serial_log == "/var/log/libvirt/qemu/u-1-serial.log"
    assert plan.hotplug_ports == 4 + 2 + 1 + 4 + 4  # disks, NICs, the SCSI controller, built in, spare


def test_an_emulated_arm_guest_gets_the_virt_machine_and_a_64_bit_cpu_model() -> None:
    spec = VMSpec(name="arm", arch="aarch64", cdrom="/img/boot.iso")
    plan = planner.plan_domain(
        spec, ARM, uuid="u-2", domain_type="qemu", driver="qemu", is_local=False, disk_sources=[], networks=[]
    )
    assert (plan.machine, plan.cpu_model, plan.acpi, plan.hotplug_ports) == ("virt", "cortex-a57", False, 0)
    assert plan.serial_log is None  # a remote host's files cannot be read back
    assert [(d.target, d.bus) for d in plan.disks] == [("sda", "scsi")]
    assert plan.scsi_controller == "virtio-scsi"


def test_other_drivers_get_no_qemu_specifics() -> None:
    plan = planner.plan_domain(
        VMSpec(name="t", cdrom="/x.iso"),
        Guest("hvm", "i686", ("test",)),
        uuid="u-3",
        domain_type="test",
        driver="test",
        is_local=True,
        disk_sources=[],
        networks=[],
    )
    assert (plan.machine, plan.acpi, plan.guest_agent, plan.serial_log) == (None, False, False, None)
    assert [(d.target, d.bus) for d in plan.disks] == [("hda", "ide")]
    assert plan.scsi_controller is None


def test_sources_must_match_the_spec() -> None:
    with pytest.raises(ValueError, match="one disk source per disk"):
        planner.plan_domain(
            VMSpec(name="t", disks=[DiskSpec(size_mib=1)]),
            X86,
            uuid="u",
            domain_type="qemu",
            driver="qemu",
            is_local=True,
            disk_sources=[],
            networks=[],
        )


@pytest.mark.parametrize(
    ("buses", "targets"),
    [
        (["sata", "scsi", "sata"], ["sda", "sdb", "sdc"]),  # a SCSI disk after a SATA one once reused its name
        (["scsi", "virtio", "sata", "virtio"], ["sda", "vda", "sdb", "vdb"]),
    ],
)
def test_scsi_and_sata_disks_never_share_a_target(buses: list[str], targets: list[str]) -> None:
    spec = VMSpec(name="mix", disks=[DiskSpec(size_mib=8, bus=bus) for bus in buses])  # type: ignore[arg-type]
    sources = [(f"/pool/v{n}.qcow2", "qcow2") for n in range(len(buses))]
    plan = planner.plan_domain(
        spec, X86, uuid="u-4", domain_type="kvm", driver="qemu", is_local=True, disk_sources=sources, networks=[]
    )
    assert [d.target for d in plan.disks] == targets


PPC = Guest("hvm", "ppc64le", ("qemu",))
S390 = Guest("hvm", "s390x", ("qemu",))
RISCV = Guest("hvm", "riscv64", ("qemu",))


@pytest.mark.parametrize(
    ("guest", "machine", "hotplug"),
    [(PPC, "pseries", True), (S390, "s390-ccw-virtio", True), (RISCV, "virt", False), (ARM, "virt", False)],
    ids=lambda value: value.arch if isinstance(value, Guest) else None,
)
def test_each_architecture_gets_its_machine_and_hot_pluggable_vcpus_only_where_qemu_plugs_them(
    guest: Guest, machine: str, hotplug: bool
) -> None:
    spec = VMSpec(name="m", arch=guest.arch, cpus=2)
    plan = planner.plan_domain(
        spec, guest, uuid="u-4", domain_type="qemu", driver="qemu", is_local=True, disk_sources=[], networks=[]
    )
    assert (plan.machine, plan.hotpluggable_cpus, plan.acpi) == (machine, hotplug, False)
    # The virt machines of QEMU 7.2 have no CPU hot-plug: libvirt would refuse to start hot-pluggable vCPUs.
    assert ("<vcpus>" in domainxml.build_domain(plan)) is hotplug


@pytest.mark.parametrize(
    ("guest", "spec", "feature", "words"),
    [
        (PPC, VMSpec(name="r", arch="ppc64le", disks=[DiskSpec(size_mib=8, bus="ide")]), None, "ide disk (disks[0])"),
        (S390, VMSpec(name="r", arch="s390x", disks=[DiskSpec(size_mib=8, bus="sata")]), None, "use one of: scsi"),
        (S390, VMSpec(name="r", arch="s390x", firmware="uefi"), Feature.UEFI, "UEFI firmware"),
        (PPC, VMSpec(name="r", arch="ppc64le", firmware="uefi"), Feature.UEFI, "booted by SLOF"),
        (ARM, VMSpec(name="r", arch="aarch64", firmware="uefi", secure_boot=True), Feature.SECURE_BOOT, "secure"),
        (X86, VMSpec(name="r", disks=[DiskSpec(size_mib=8, bus="ide")]), None, "machine q35"),
    ],
    ids=["ppc-ide", "s390-sata", "s390-uefi", "ppc-uefi", "arm-secure-boot", "q35-ide"],
)
def test_what_an_architecture_cannot_carry_is_refused_with_the_reason(
    guest: Guest, spec: VMSpec, feature: Feature | None, words: str
) -> None:
    with pytest.raises(UnsupportedError) as caught:
        planner.check_spec(spec, guest, driver="qemu", host="h")
    assert caught.value.feature is feature
    assert f"{guest.arch} guests" in caught.value.message
    assert words in caught.value.message
    assert (caught.value.host, caught.value.vm) == ("h", "r")
    planner.check_spec(spec, guest, driver="test")  # other drivers decide for themselves


def test_what_each_machine_carries_is_accepted() -> None:
    for guest in (X86, ARM, PPC, S390, RISCV):
        disks = [DiskSpec(size_mib=8, bus=bus) for bus in ("virtio", "scsi")]
        planner.check_spec(VMSpec(name="ok", arch=guest.arch, disks=disks, cpus=2), guest, driver="qemu")


def test_a_riscv64_vm_lacks_both_graceful_shutdowns_with_the_reason_and_other_architectures_lack_none() -> None:
    lacks = machines.lacking("riscv64")
    assert set(lacks) == {Feature.SHUTDOWN_ACPI, Feature.SHUTDOWN_AGENT}
    assert "no ACPI power button" in lacks[Feature.SHUTDOWN_ACPI]
    assert "sifive_test" in lacks[Feature.SHUTDOWN_AGENT]
    for arch in ("x86_64", "aarch64", "ppc64le", "s390x", "sparc64"):
        assert machines.lacking(arch) == {}, arch
        machines.refuse_default_shutdown(arch)
    with pytest.raises(UnsupportedError) as caught:
        machines.refuse_default_shutdown("riscv64", host="h", vm="r")
    assert caught.value.feature is Feature.SHUTDOWN_ACPI
    assert (caught.value.host, caught.value.vm) == ("h", "r")
    assert caught.value.message.startswith("riscv64 guests cannot be shut down gracefully here (")
    assert caught.value.message.endswith("; use stop() to power the VM off")
