"""A TPM, nested virtualization and host devices on libvirt: the XML written and read back, the node devices of
libvirt's test driver (a custom driver file, since ``test:///default`` has no PCI or USB devices and this machine
has no spare one), and the refusals of ``qemu:///system`` on this host, each before anything is defined.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

import polyvisor
from polyvisor import Connection, Feature, InUseError, UnsupportedError, ValidationError, VMSpec
from polyvisor.model import HostDeviceKind
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.devicexml import Hostdev, parse_device_facts

HOST_XML = Path(__file__).with_name("host-devices.xml")
"""A host with a graphics card, a PCI bridge (never listed: bridges are not assigned) and a USB flash drive."""


@pytest.fixture
def test_host() -> Iterator[Connection]:
    with polyvisor.connect(f"test://{HOST_XML}") as conn:
        yield conn


def test_the_xml_carries_the_tpm_a_nested_cpu_and_host_devices_and_reads_back() -> None:
    gpu = Hostdev("pci_0000_03_00_0", HostDeviceKind.PCI, pci=(0, 3, 0, 0))
    key = Hostdev("usb_1_4", HostDeviceKind.USB, usb_ids=("0x0781", "0x5567"), usb_address=(1, 4))
    plan = domainxml.DomainPlan(
        uuid=str(uuid.uuid4()),
        name="pvtest-xml",
        domain_type="kvm",
        os_type="hvm",
        arch="x86_64",
        cpus=1,
        memory_mib=64,
        tpm_version="2.0",
        tpm_model="tpm-crb",
        nested_cpu_feature="svm",
        hostdevs=(gpu, key),
    )
    root = ET.fromstring(domainxml.build_domain(plan))
    tpm = root.find("devices/tpm")
    assert tpm is not None
    assert tpm.get("model") == "tpm-crb"
    assert root.find("devices/tpm/backend").attrib == {"type": "emulator", "version": "2.0"}  # type: ignore[union-attr]
    assert root.find("cpu").attrib == {"mode": "host-passthrough", "check": "none"}  # type: ignore[union-attr]
    assert root.find("cpu/feature").attrib == {"policy": "require", "name": "svm"}  # type: ignore[union-attr]
    sources = [ET.tostring(e, encoding="unicode") for e in root.iterfind("devices/hostdev/source/address")]
    assert len(sources) == 2
    facts = parse_device_facts(root)
    assert (facts.tpm_version, facts.nested, facts.host_devices) == ("2.0", True, ("pci_0000_03_00_0", "usb_1_4"))
    assert [d.pci for d in facts.hostdevs] == [(0, 3, 0, 0), None]
    assert facts.hostdevs[1].usb_ids == ("0x0781", "0x5567")


def test_the_test_driver_lists_pci_and_usb_devices_but_no_bridge(test_host: Connection) -> None:
    devices = {device.name: device for device in test_host.host_devices()}
    assert set(devices) == {"pci_0000_03_00_0", "usb_1_4"}
    gpu, key = devices["pci_0000_03_00_0"], devices["usb_1_4"]
    assert (gpu.kind, gpu.address, gpu.vendor, gpu.product) == (HostDeviceKind.PCI, "0000:03:00.0", "0x10de", "0x1eb8")
    assert gpu.description == "NVIDIA Corporation TU104GL [Tesla T4]"
    assert (key.kind, key.address, key.used_by) == (HostDeviceKind.USB, "001:004", None)
    for feature in (Feature.TPM, Feature.HOST_DEVICES, Feature.PCI_PASSTHROUGH, Feature.USB_PASSTHROUGH):
        assert test_host.supports(feature)


def test_a_device_goes_to_one_domain_and_is_free_again_once_it_is_deleted(test_host: Connection) -> None:
    vm = test_host.create(VMSpec("pvtest-gpu", tpm=True, host_devices=("pci_0000_03_00_0", "usb_1_4")))
    info = vm.info()
    assert info.extra["host_devices"] == ["pci_0000_03_00_0", "usb_1_4"]
    assert info.extra["tpm"] == "2.0"
    assert {d.name: d.used_by for d in test_host.host_devices()} == {
        "pci_0000_03_00_0": "pvtest-gpu",
        "usb_1_4": "pvtest-gpu",
    }
    count = len(test_host.list())
    with pytest.raises(InUseError) as caught:
        test_host.create(VMSpec("pvtest-second", host_devices=("usb_1_4",)))
    assert caught.value.users == ("pvtest-gpu",)
    assert "'pvtest-gpu'" in str(caught.value)
    with pytest.raises(ValidationError) as unknown:
        test_host.create(VMSpec("pvtest-third", host_devices=("pci_0000_00_1c_0",)))  # the bridge: not listed
    assert unknown.value.field == "host_devices[0]"
    assert len(test_host.list()) == count
    vm.delete()
    assert {d.used_by for d in test_host.host_devices()} == {None}


def test_a_hostdev_defined_outside_polyvisor_marks_its_device_used(test_host: Connection) -> None:
    raw: libvirt.virConnect = test_host.backend._client.conn  # type: ignore[attr-defined]  # the same test host
    raw.defineXML(
        "<domain type='test'><name>pvtest-foreign</name><memory>65536</memory><os><type>hvm</type></os><devices>"
        "<hostdev mode='subsystem' type='usb'><source><vendor id='0x0781'/><product id='0x5567'/></source>"
        "</hostdev></devices></domain>"
    )
    assert {d.name: d.used_by for d in test_host.host_devices()}["usb_1_4"] == "pvtest-foreign"


@pytest.mark.libvirtd
def test_qemu_on_this_host_refuses_nested_and_an_unknown_tpm_model_before_defining() -> None:
    with polyvisor.connect("qemu:///system") as conn:
        before = {info.name for info in conn.list()}
        if not conn.supports(Feature.NESTED_VIRTUALIZATION):
            reason = conn.capabilities.why_not(Feature.NESTED_VIRTUALIZATION)
            assert reason, "a missing nested-virtualization says why"
            with pytest.raises(UnsupportedError) as caught:
                conn.create(VMSpec(f"pvtest-nested-{uuid.uuid4().hex[:8]}", nested_virtualization=True))
            assert caught.value.feature is Feature.NESTED_VIRTUALIZATION
            assert reason in str(caught.value)
        assert conn.supports(Feature.TPM), conn.capabilities.why_not(Feature.TPM)
        with pytest.raises(ValidationError) as model:
            conn.create(VMSpec(f"pvtest-tpm-{uuid.uuid4().hex[:8]}", tpm={"model": "tpm-spapr"}, accelerator="tcg"))
        assert model.value.field == "tpm.model"
        assert "tpm-tis" in str(model.value)
        assert {info.name for info in conn.list()} == before
