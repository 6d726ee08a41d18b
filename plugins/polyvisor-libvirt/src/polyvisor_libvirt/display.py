"""A domain's screen: its VNC or SPICE console read from the live XML, and screenshots over a stream.

The console's port is the running domain's (an automatic one is chosen when QEMU starts), so it is read from the
live XML. Whether a password is set is read with ``VIR_DOMAIN_XML_SECURE`` (which a read-only connection may not
use: then it is unknown), and only whether: the password never leaves this module.

A console that listens on the loopback of a remote host is reached through an SSH port forward. Its command is the
one libvirt's own SSH transport would run to reach that host: the URI's ``command`` (else ``ssh``), user, port,
``keyfile`` and ``known_hosts``, and ``no_verify``; it is an argv list, never shell text.

``virDomainScreenshot`` streams what QEMU's ``screendump`` wrote: a PNG from QEMU 7.1 on (libvirt asks for one when
QEMU can), a binary PPM before, converted here (:mod:`polyvisor.png`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace

import libvirt

from polyvisor.backend import Deadline
from polyvisor.errors import BackendError, UnsupportedError
from polyvisor.model import Feature, GraphicsInfo
from polyvisor.png import encode, from_ppm, is_png
from polyvisor.uri import URI
from polyvisor_libvirt.client import LibvirtClient
from polyvisor_libvirt.domainxml import GraphicsDevice, parse_graphics

__all__ = ["Display", "free_local_port", "reach", "tunnel_command"]

_CHUNK = 256 * 1024
_SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def free_local_port() -> int:
    """A TCP port of this machine's loopback that nothing listens on now (the tunnel's local end)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tunnel_command(uri: URI, listen: str, port: int, local_port: int) -> tuple[str, ...]:
    """The SSH port forward from this machine's ``127.0.0.1:local_port`` to ``listen:port`` on the URI's host."""
    argv = [uri.param("command") or "ssh", "-N", "-o", "ExitOnForwardFailure=yes"]
    argv += ["-L", f"127.0.0.1:{local_port}:{_bracket(listen)}:{port}"]
    if uri.port is not None:
        argv += ["-p", str(uri.port)]
    if uri.param("keyfile"):
        argv += ["-i", str(uri.param("keyfile"))]
    if uri.param("known_hosts"):
        argv += ["-o", f"UserKnownHostsFile={uri.param('known_hosts')}"]
    if uri.param("no_verify") == "1":
        argv += ["-o", "StrictHostKeyChecking=no"]
    if uri.username:
        argv += ["-l", uri.username]
    return (*argv, "--", uri.host or "localhost")


def reach(uri: URI, device: GraphicsDevice, local_port: Callable[[], int] = free_local_port) -> GraphicsInfo:
    """Where a viewer on this machine connects to ``device`` of a domain on the URI's host; a tunnel's local end is
    a port ``local_port()`` gives (one free on this machine, since its own display may hold the remote's number)."""
    wildcard = device.listen in ("0.0.0.0", "::")
    tunnel: tuple[str, ...] = ()
    detail = ""
    port = device.port
    # An SSH URI is treated as remote even to 127.0.0.1: the host is reached the way libvirt reaches it.
    if uri.is_local and uri.transport not in _SSH_TRANSPORTS:
        host = "127.0.0.1" if wildcard else device.listen
    elif wildcard:
        host = uri.host or device.listen
    elif _loopback(device.listen):
        host, port = "127.0.0.1", local_port()
        tunnel = tunnel_command(uri, device.listen, device.port, port)
        if uri.transport not in _SSH_TRANSPORTS:
            detail = f"the display listens only on {uri.host}'s loopback: the tunnel needs SSH access to that host"
    else:
        host = device.listen
    info = GraphicsInfo(
        protocol=device.protocol,
        host=host,
        port=port,
        listen=device.listen,
        host_port=device.port,
        tls_port=device.tls_port,
        password_required=device.password,
        tunnel=tunnel,
        detail=detail,
    )
    return replace(info, viewer=("remote-viewer", info.uri))


class Display:
    """Consoles and screenshots of one client's domains."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def graphics(self, uuid: str) -> GraphicsInfo:
        """The first VNC or SPICE console of the running domain."""
        client = self._client
        dom = client.domain(uuid)
        with client.errors("reading the graphics", host=client.host, vm=dom.name()):
            try:
                root, secure = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)), True
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_OPERATION_DENIED:
                    raise
                root, secure = ET.fromstring(dom.XMLDesc(0)), False  # a read-only connection
        devices = [device for device in parse_graphics(root, secure=secure) if device.port > 0]
        if not devices:
            raise UnsupportedError(
                f"{dom.name()!r} has no VNC or SPICE console listening on a port (a console on a UNIX socket only "
                "is reached through libvirt's own tools)",
                feature=Feature.GRAPHICS,
                host=client.host,
                vm=dom.name(),
            )
        return reach(client.uri, devices[0])

    def screenshot(self, uuid: str, deadline: Deadline) -> bytes:
        """Screen 0 of the running domain, as PNG bytes."""
        client = self._client
        dom = client.domain(uuid)
        name = dom.name()
        chunks: list[bytes] = []
        with client.errors("taking a screenshot", host=client.host, vm=name):
            stream = client.live().newStream(0)
            try:
                mime = dom.screenshot(stream, 0, 0)
                while True:
                    deadline.check("taking a screenshot", host=client.host, vm=name)
                    got = stream.recv(_CHUNK)
                    if not isinstance(got, bytes) or not got:
                        break
                    chunks.append(got)
                stream.finish()
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                raise
        data = b"".join(chunks)
        if is_png(data):
            return data
        if data.startswith(b"P6"):
            try:
                return encode(from_ppm(data))
            except ValueError as error:
                raise BackendError(
                    f"libvirt sent an unreadable PPM screenshot of {name!r}: {error}", host=client.host, vm=name
                ) from error
        raise BackendError(
            f"libvirt sent a screenshot of {name!r} as {mime!r}, which polyvisor cannot convert to PNG",
            host=client.host,
            vm=name,
        )
