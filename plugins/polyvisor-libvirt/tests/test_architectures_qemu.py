"""The architectures libvirtd's QEMU driver offers (``qemu:///system``), as the host's facts report them: read from
its capabilities, with the machine polyvisor gives each and what each one's VMs lack."""

from __future__ import annotations

import libvirt
import pytest

import polyvisor
from polyvisor import Architecture, Feature
from polyvisor_libvirt import machines
from polyvisor_libvirt.probe import parse_capabilities

pytestmark = pytest.mark.libvirtd

URI = "qemu:///system"
# The emulators scripts/libvirt-env installs: the five architectures whose tiny guests CI boots.
INSTALLED = ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64")


def test_the_host_reports_every_architecture_a_spec_can_name_that_its_qemu_runs() -> None:
    raw = libvirt.open(URI)
    try:
        caps = parse_capabilities(raw.getCapabilities())
    finally:
        raw.close()
    offered = {guest.arch for guest in caps.guests if guest.os_type == "hvm"}
    with polyvisor.connect(URI) as conn:
        info = conn.host_info()
    reported = {guest.arch: guest for guest in info.architectures}
    assert info.architectures[0].arch == info.arch, "the host's own architecture comes first"
    assert set(reported) == offered & {arch.value for arch in Architecture}
    assert set(INSTALLED) <= set(reported)
    for arch in INSTALLED:
        guest = reported[arch]
        assert "tcg" in guest.accelerators, guest
        assert guest.machine == machines.MACHINES[arch].name
        assert dict(guest.lacks) == dict(machines.lacking(arch))
    assert set(reported["riscv64"].lacks) == {Feature.SHUTDOWN_ACPI, Feature.SHUTDOWN_AGENT}
    assert conn.capabilities.supports(Feature.ARCHITECTURE_CHOICE)


def test_polyvisor_host_shows_them_with_what_their_vms_lack() -> None:
    from click.testing import CliRunner

    from polyvisor.cli import cli

    result = CliRunner().invoke(cli, ["-c", URI, "host"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = result.output.split("Architectures:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split() == ["ARCH", "ACCELERATORS", "MACHINE", "VMS", "LACK"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert rows["riscv64"].split()[2:] == ["virt", "shutdown-acpi,", "shutdown-agent"]
    assert rows["ppc64le"].split()[2:] == ["pseries", "-"]
    assert rows["s390x"].split()[2:] == ["s390-ccw-virtio", "-"]
