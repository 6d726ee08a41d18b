"""Smoke tests of the real-guest environment with raw libvirt-python (no polyvisor code)."""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from .support import (
    NETWORK,
    POOL,
    SERIAL_DIR,
    GuestImage,
    agent_command,
    cleanup,
    create_disk,
    domain_xml,
    ensure_environment,
    serial_log_path,
    wait_for_agent,
    wait_for_marker,
    wait_for_state,
)

if TYPE_CHECKING:
    import libvirt


Recorder = Callable[[str, object], None]
MAC = "52:54:00:7e:57:01"


def boot(
    conn: libvirt.virConnect, image: GuestImage, name: str, *, mac: str | None = None
) -> tuple[libvirt.virDomain, float]:
    """Define and start the guest; return it and the seconds from start to the marker."""
    disk = create_disk(conn, f"{name}.qcow2")
    log = serial_log_path(name)
    dom = conn.defineXML(domain_xml(image, name, disk.name(), log, mac=mac))
    started = time.monotonic()
    dom.create()
    wait_for_marker(log, image.marker, timeout=120)
    return dom, time.monotonic() - started


def test_x86_guest_boots_answers_agent_and_powers_off_on_acpi(
    libvirt_conn: libvirt.virConnect, name_prefix: str, record_property: Recorder
) -> None:
    import libvirt

    image = ensure_environment("x86_64")
    dom, boot_s = boot(libvirt_conn, image, f"{name_prefix}x86", mac=MAC)

    started = time.monotonic()
    wait_for_agent(dom, timeout=30)
    agent_s = time.monotonic() - started
    interfaces = {i["name"]: i for i in agent_command(dom, "guest-network-get-interfaces")}
    lo_addresses = {a["ip-address"] for a in interfaces["lo"].get("ip-addresses", [])}
    assert "127.0.0.1" in lo_addresses
    assert MAC in {i.get("hardware-address") for i in interfaces.values()}

    started = time.monotonic()
    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=30)
    shutdown_s = time.monotonic() - started
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]

    for key, value in (("boot_s", boot_s), ("agent_s", agent_s), ("acpi_shutdown_s", shutdown_s)):
        record_property(key, round(value, 2))
    print(f"x86_64: marker {boot_s:.2f} s, agent +{agent_s:.2f} s, ACPI off {shutdown_s:.2f} s")


def test_x86_guest_shuts_down_through_agent(
    libvirt_conn: libvirt.virConnect, name_prefix: str, record_property: Recorder
) -> None:
    import libvirt

    image = ensure_environment("x86_64")
    dom, _ = boot(libvirt_conn, image, f"{name_prefix}x86")
    wait_for_agent(dom, timeout=30)

    started = time.monotonic()
    # libvirt sends guest-shutdown (which has no reply) and handles the agent going away.
    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=30)
    shutdown_s = time.monotonic() - started
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    record_property("agent_shutdown_s", round(shutdown_s, 2))
    print(f"x86_64: agent shutdown {shutdown_s:.2f} s")


def test_aarch64_guest_boots_to_marker_and_powers_off(
    libvirt_conn: libvirt.virConnect, name_prefix: str, record_property: Recorder
) -> None:
    import libvirt

    image = ensure_environment("aarch64")
    dom, boot_s = boot(libvirt_conn, image, f"{name_prefix}arm")
    wait_for_agent(dom, timeout=60)

    started = time.monotonic()
    # No ACPI without UEFI here: QEMU's virt machine presses a gpio-keys power key instead.
    dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=60)
    shutdown_s = time.monotonic() - started
    record_property("boot_s", round(boot_s, 2))
    record_property("shutdown_s", round(shutdown_s, 2))
    print(f"aarch64: marker {boot_s:.2f} s, power-key off {shutdown_s:.2f} s")


def test_cleanup_removes_only_prefixed_objects(libvirt_conn: libvirt.virConnect, name_prefix: str) -> None:
    import libvirt

    image = ensure_environment("x86_64")
    other = f"{name_prefix}keep-"  # shares the test prefix's start but not the cleaned prefix
    doomed = f"{name_prefix}gone-"
    for base in (doomed, other):
        disk = create_disk(libvirt_conn, f"{base}disk.qcow2", capacity_mib=1)
        libvirt_conn.defineXML(domain_xml(image, f"{base}dom", disk.name(), serial_log_path(f"{base}d")))
        net = ET.Element("network")  # isolated and never started: no traffic
        ET.SubElement(net, "name").text = f"{base}net"
        libvirt_conn.networkDefineXML(ET.tostring(net, encoding="unicode"))

    cleanup(libvirt_conn, doomed)

    pool = libvirt_conn.storagePoolLookupByName(POOL)
    with contextlib.suppress(libvirt.libvirtError):  # fails while another client creates a volume there
        pool.refresh()
    names = (
        {d.name() for d in libvirt_conn.listAllDomains()}
        | {v.name() for v in pool.listAllVolumes()}
        | {n.name() for n in libvirt_conn.listAllNetworks()}
    )
    assert not {n for n in names if n.startswith(doomed)}
    assert {f"{other}dom", f"{other}disk.qcow2", f"{other}net"} <= names
    assert not list(SERIAL_DIR.glob(f"{doomed}*"))
    assert libvirt_conn.networkLookupByName(NETWORK).isActive()
    with pytest.raises(ValueError, match="refusing"):
        cleanup(libvirt_conn, "default")
    with pytest.raises(libvirt.libvirtError):
        libvirt_conn.lookupByName(f"{doomed}dom")
