"""Provisioning pieces that need no libvirt connection: plans, domain XML, image headers, redefinitions."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import pytest

from polyvisor import DiskSpec, VMSpec
from polyvisor.model import DynamicMemory
from polyvisor_libvirt import planner
from polyvisor_libvirt.addresses import agent_detail
from polyvisor_libvirt.domainxml import MEMORY_NS, STORAGE_NS, build_domain, parse_definition
from polyvisor_libvirt.images import probe_header
from polyvisor_libvirt.probe import Guest
from polyvisor_libvirt.sizing import redefine_size

X86 = Guest("hvm", "x86_64", ("qemu",))


def _plan(spec: VMSpec, sources: list[tuple[str, str]], seed: str | None = None) -> ET.Element:
    plan = planner.plan_domain(
        spec,
        X86,
        uuid="6f1c6a0e-2f0b-4a53-9d36-1b1d5f3b2f11",
        domain_type="qemu",
        driver="qemu",
        is_local=True,
        disk_sources=sources,
        networks=[],
        seed=seed,
    )
    return ET.fromstring(build_domain(plan))


def test_clones_and_the_seed_are_owned_and_the_base_is_not() -> None:
    spec = VMSpec(
        name="c",
        disks=[DiskSpec(image="/base/a.qcow2", clone="linked"), DiskSpec(image="/base/b.img", clone="copy")],
        cdrom="/isos/install.iso",
    )
    root = _plan(spec, [("/pool/c0.qcow2", "qcow2"), ("/pool/c1.img", "raw")], seed="/pool/c-seed.iso")
    owned = [v.get("path") for v in root.iterfind(f"metadata/{{{STORAGE_NS}}}volumes/{{{STORAGE_NS}}}volume")]
    assert owned == ["/pool/c0.qcow2", "/pool/c1.img", "/pool/c-seed.iso"]
    cdroms = [d for d in root.iterfind("devices/disk") if d.get("device") == "cdrom"]
    # The user's CD-ROM and the seed: both read-only, on SCSI (virtio-scsi: cloud kernels have no AHCI), on targets
    # of their own.
    assert [(d.find("source").get("file"), d.find("target").get("dev")) for d in cdroms] == [  # type: ignore[union-attr]
        ("/isos/install.iso", "sda"),
        ("/pool/c-seed.iso", "sdb"),
    ]
    assert all(d.find("readonly") is not None and d.find("target").get("bus") == "scsi" for d in cdroms)  # type: ignore[union-attr]
    assert [c.get("model") for c in root.iterfind("devices/controller[@type='scsi']")] == ["virtio-scsi"]
    assert parse_definition(build_domain(planner.plan_domain(
        spec, X86, uuid="u", domain_type="qemu", driver="qemu", is_local=True,
        disk_sources=[("/pool/c0.qcow2", "qcow2"), ("/pool/c1.img", "raw")], networks=[], seed="/pool/s.iso",
    ))).owned_volumes == ("/pool/c0.qcow2", "/pool/c1.img", "/pool/s.iso")  # fmt: skip


def test_dynamic_memory_maps_to_memory_current_memory_and_a_recorded_minimum() -> None:
    spec = VMSpec(name="d", memory_mib=512, dynamic_memory=DynamicMemory(256, 2048), cpus=2)
    root = _plan(spec, [])
    assert root.findtext("memory") == str(2048 * 1024)
    assert root.findtext("currentMemory") == str(512 * 1024)
    assert root.find(f"metadata/{{{MEMORY_NS}}}dynamic").get("minimum-mib") == "256"  # type: ignore[union-attr]
    assert root.findtext("vcpu") == "2"
    assert root.find("vcpu").get("current") is None  # type: ignore[union-attr]
    definition = parse_definition(ET.tostring(root, encoding="unicode"))
    assert (definition.memory_mib, definition.current_memory_mib, definition.memory_minimum_mib) == (2048, 512, 256)
    assert (definition.cpus, definition.max_cpus) == (2, 2)


def test_a_domain_with_a_vcpu_current_reads_current_and_maximum() -> None:
    xml = "<domain type='qemu'><name>v</name><uuid>u</uuid><vcpu current='2'>4</vcpu><memory>1048576</memory>"
    xml += "<currentMemory>524288</currentMemory><devices><memballoon model='none'/></devices></domain>"
    definition = parse_definition(xml)
    assert (definition.cpus, definition.max_cpus, definition.memory_mib, definition.current_memory_mib) == (
        2,
        4,
        1024,
        512,
    )
    assert definition.balloon is False
    assert definition.memory_minimum_mib is None


def test_a_cold_redefinition_sets_both_vcpu_counts_and_memory_or_only_startup_memory_when_dynamic() -> None:
    xml = "<domain><vcpu current='1'>4</vcpu><memory unit='KiB'>1048576</memory>"
    xml += "<currentMemory unit='KiB'>1048576</currentMemory><cpu><topology sockets='2' cores='2' threads='1'/></cpu>"
    xml += "</domain>"
    root = ET.fromstring(redefine_size(xml, cpus=6, memory_mib=2048, minimum_mib=None))
    assert (root.findtext("vcpu"), root.find("vcpu").get("current")) == ("6", None)  # type: ignore[union-attr]
    assert (root.findtext("memory"), root.findtext("currentMemory")) == (str(2048 * 1024),) * 2
    assert root.find("cpu/topology").attrib == {"sockets": "3", "cores": "2", "threads": "1"}  # type: ignore[union-attr]
    odd = ET.fromstring(redefine_size(xml, cpus=3, memory_mib=None, minimum_mib=None))
    assert odd.find("cpu/topology").attrib == {"sockets": "3", "cores": "1", "threads": "1"}  # type: ignore[union-attr]
    dynamic = ET.fromstring(redefine_size(xml, cpus=None, memory_mib=512, minimum_mib=256))
    assert (dynamic.findtext("memory"), dynamic.findtext("currentMemory")) == (str(1024 * 1024), str(512 * 1024))


def _qcow2(size: int) -> bytes:
    return (b"QFI\xfb" + struct.pack(">I", 3) + bytes(16) + struct.pack(">Q", size)).ljust(512, b"\0")


def test_image_headers_give_format_and_virtual_size_or_say_why_not_an_image() -> None:
    assert probe_header(_qcow2(1 << 30), b"", 200_000, None) == ("qcow2", 1 << 30)
    assert probe_header(_qcow2(1 << 30), b"", 200_000, "qcow2") == ("qcow2", 1 << 30)
    footer = (b"conectix" + bytes(40) + struct.pack(">Q", 64 << 20)).ljust(512, b"\0")
    assert probe_header(bytes(512), footer, (64 << 20) + 512, None) == ("vpc", 64 << 20)
    assert probe_header(bytes(512), bytes(512), 4096, None) == ("raw", 4096)
    with pytest.raises(ValueError, match="not a disk image"):
        probe_header(b"hello\n", b"hello\n", 6, None)
    with pytest.raises(ValueError, match="not a disk image"):
        probe_header(b"", b"", 0, None)
    with pytest.raises(ValueError, match="no qcow2 header"):
        probe_header(bytes(512), bytes(512), 4096, "qcow2")
    with pytest.raises(ValueError, match="is a qcow2 image, not raw"):
        probe_header(_qcow2(1 << 20), b"", 4096, "raw")
    with pytest.raises(ValueError, match="VHDX"):
        probe_header(b"vhdxfile".ljust(512, b"\0"), b"", 1 << 20, None)


def test_agent_errors_become_details() -> None:
    import libvirt

    unresponsive = libvirt.VIR_ERR_AGENT_UNRESPONSIVE
    assert agent_detail(unresponsive, "QEMU guest agent is not connected") == "agent not connected"
    assert agent_detail(unresponsive, "Guest agent not available for now").startswith("agent not responding")
    assert "no guest agent channel" in agent_detail(libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, "not configured")
