"""Domain XML details that only real QEMU exercises: hot-plug ports and emulated CPU models."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from polyvisor_libvirt.domainxml import DomainPlan, build_domain

PLAN = DomainPlan(
    uuid="6f1c6a0e-2f0b-4a53-9d36-1b1d5f3b2f11", name="x", domain_type="qemu", os_type="hvm", arch="x86_64",
    cpus=1, memory_mib=64, machine="q35",
)  # fmt: skip


def test_q35_gets_a_named_root_and_spare_root_ports() -> None:
    root = ET.fromstring(build_domain(replace(PLAN, hotplug_ports=3)))
    controllers = [(c.get("index"), c.get("model")) for c in root.iterfind("devices/controller")]
    assert controllers == [("0", "pcie-root")] + [(None, "pcie-root-port")] * 3


def test_no_controllers_are_written_without_hot_plug_ports() -> None:
    assert ET.fromstring(build_domain(PLAN)).find("devices/controller") is None


def test_an_emulated_cpu_model_is_exact() -> None:
    root = ET.fromstring(build_domain(replace(PLAN, arch="aarch64", cpu_model="cortex-a57")))
    cpu = root.find("cpu")
    assert cpu is not None
    assert cpu.get("mode") == "custom"
    assert root.findtext("cpu/model") == "cortex-a57"
