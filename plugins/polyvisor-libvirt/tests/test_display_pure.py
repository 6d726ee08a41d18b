"""The screen's XML and tunnels without a host: the password only as an attribute value, the consoles parsed back
from live XML, and where a viewer connects for each kind of URI."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from polyvisor.model import GraphicsSpec
from polyvisor.uri import URI
from polyvisor_libvirt.display import reach, tunnel_command
from polyvisor_libvirt.domainxml import GraphicsDevice, graphics_element, parse_graphics, to_text


def test_a_hostile_password_stays_an_attribute_value() -> None:
    hostile = "'/><x a=\"&"
    element = graphics_element(GraphicsSpec(protocol="spice", password=hostile, port=5999))  # type: ignore[arg-type]
    parsed = ET.fromstring(to_text(element))
    assert parsed.get("passwd") == hostile
    assert (parsed.get("type"), parsed.get("autoport"), parsed.get("port")) == ("spice", "no", "5999")
    assert parsed.find("listen").get("address") == "127.0.0.1"  # type: ignore[union-attr]
    assert list(parsed) == [parsed.find("listen")]


def test_live_xml_gives_the_port_and_whether_a_password_is_set() -> None:
    live = ET.fromstring(
        "<domain><devices><graphics type='vnc' port='5903' autoport='yes' passwd='x'>"
        "<listen type='address' address='0.0.0.0'/></graphics><graphics type='dbus'/>"
        "<graphics type='spice' port='5904' tlsPort='5905'><listen type='address' address='::1'/></graphics>"
        "</devices></domain>"
    )
    vnc, spice = parse_graphics(live, secure=True)
    assert (vnc.protocol, vnc.port, vnc.listen, vnc.password) == ("vnc", 5903, "0.0.0.0", True)
    assert (spice.tls_port, spice.listen, spice.password) == (5905, "::1", False)
    assert parse_graphics(live, secure=False)[0].password is None


def test_where_a_viewer_connects_for_each_kind_of_uri() -> None:
    loopback = GraphicsDevice("vnc", 5901, "127.0.0.1", password=False)
    local = reach(URI.parse("qemu:///system"), loopback)
    assert (local.host, local.port, local.tunnel, local.uri) == ("127.0.0.1", 5901, (), "vnc://127.0.0.1:5901")
    remote = reach(URI.parse("qemu+ssh://ops@kvm1:2222/system?keyfile=/k/id&no_verify=1"), loopback, lambda: 40001)
    assert (remote.host, remote.port, remote.host_port) == ("127.0.0.1", 40001, 5901)
    assert remote.tunnel == (
        *("ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:40001:127.0.0.1:5901"),
        *("-p", "2222", "-i", "/k/id", "-o", "StrictHostKeyChecking=no", "-l", "ops", "--", "kvm1"),
    )
    assert remote.viewer == ("remote-viewer", "vnc://127.0.0.1:40001")
    tls = reach(URI.parse("qemu+tls://kvm1/system"), loopback, lambda: 40002)
    assert tls.tunnel[-1] == "kvm1"
    assert "SSH access" in tls.detail
    everywhere = reach(URI.parse("qemu+tls://kvm1/system"), GraphicsDevice("spice", 5902, "0.0.0.0"))
    assert (everywhere.host, everywhere.tunnel) == ("kvm1", ())
    assert tunnel_command(URI.parse("qemu+ssh://h/system"), "::1", 5900, 5900)[5] == "127.0.0.1:5900:[::1]:5900"
