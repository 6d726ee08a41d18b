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


def test_a_user_mode_nic_carries_libvirts_own_port_forwards() -> None:
    from polyvisor.model import PortForward
    from polyvisor_libvirt.domainxml import NicDevice, nic_element, parse_definition, to_text

    forwards = (PortForward(2222, 22), PortForward(5353, 53, "udp", "127.0.0.2"))
    element = nic_element(NicDevice(None, "52:54:00:00:00:07", "virtio", forwards))
    assert element.get("type") == "user"
    assert element.find("source") is None
    rules = [
        (rule.get("proto"), rule.get("address"), rule.find("range").attrib) for rule in element.iter("portForward")
    ]  # type: ignore[union-attr]
    assert rules == [
        ("tcp", "127.0.0.1", {"start": "2222", "to": "22"}),
        ("udp", "127.0.0.2", {"start": "5353", "to": "53"}),
    ]
    domain = f"<domain><name>x</name><uuid>{PLAN.uuid}</uuid><devices>{to_text(element)}</devices></domain>"
    (nic,) = parse_definition(domain).nics
    assert (nic.kind, nic.mac, nic.forwards, nic.passt) == ("user", "52:54:00:00:00:07", forwards, False)


def test_forwards_libvirt_writes_as_ranges_are_read_port_by_port() -> None:
    from polyvisor.model import PortForward
    from polyvisor_libvirt import forwards
    from polyvisor_libvirt.domainxml import parse_definition

    domain = (
        "<domain><name>x</name><devices>"
        "<interface type='user'><mac address='52:54:00:00:00:08'/><alias name='net0'/>"
        "<portForward proto='tcp' address='127.0.0.1'><range start='3000' end='3001' to='80'/>"
        "<range start='4000'/></portForward>"
        "<portForward proto='tcp'><range start='5000' to='22'/></portForward></interface>"  # no address: skipped
        "<interface type='user'><backend type='passt'/><portForward proto='tcp' address='127.0.0.1'>"
        "<range start='6000' to='22'/></portForward></interface>"
        "</devices></domain>"
    )
    definition = parse_definition(domain)
    assert definition.nics[0].forwards == (PortForward(3000, 80), PortForward(3001, 81), PortForward(4000, 4000))
    found = forwards.rules(definition)
    assert [rule.command for rule in found] == [
        "hostfwd_add hostnet0 tcp:127.0.0.1:3000-:80",
        "hostfwd_add hostnet0 tcp:127.0.0.1:3001-:81",
        "hostfwd_add hostnet0 tcp:127.0.0.1:4000-:4000",
    ]  # passt sets its own forwards
