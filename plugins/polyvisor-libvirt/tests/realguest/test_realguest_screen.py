"""The screen of real QEMU guests: a VNC console that answers RFB and asks for its password, a SPICE console that
answers SPICE's link handshake, both on 127.0.0.1 only, and screenshots of what the guest's firmware writes.

The tiny guest's kernel writes to its serial console only (``console=ttyS0``); what its VGA display shows is
SeaBIOS's boot text ("SeaBIOS (version ...)", "Booting from ROM..."), which stays on the screen while the kernel
runs. The two guests share one test: each boot costs TCG time.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import libvirt

from polyvisor import png
from polyvisor.testing import eventually

from .pvguest import Guests
from .support import GuestImage

PASSWORD = "Pv-vnc1"


def _rfb_security_types(port: int) -> tuple[bytes, list[int]]:
    """The server's RFB version line, and the security types it offers after we answer with RFB 3.8."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        version = conn.recv(12)
        conn.sendall(b"RFB 003.008\n")
        (count,) = conn.recv(1)
        return version, list(conn.recv(count))


def _spice_link_reply(port: int) -> bytes:
    """The header of the SPICE server's reply to a link message for the main channel (SpiceLinkHeader/Mess)."""
    message = struct.pack("<IBBIII", 0, 1, 0, 0, 0, 18)  # connection 0, main channel 0, no capabilities
    header = b"REDQ" + struct.pack("<III", 2, 2, len(message))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(header + message)
        reply = b""
        while len(reply) < 16:
            got = conn.recv(16 - len(reply))
            if not got:
                break
            reply += got
        return reply


def _listens_only_on_loopback(port: int) -> bool:
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in lines if line.split()[3] == "0A"]  # state LISTEN
    bound = [address for address in local if int(address.split(":")[1], 16) == port]
    return bool(bound) and all(address.split(":")[0] == "0100007F" for address in bound)


def test_vnc_and_spice_consoles_answer_their_handshakes_and_the_screen_shows_the_firmware(
    guests: Guests, x86_image: GuestImage, libvirt_conn: libvirt.virConnect
) -> None:
    vnc = guests.create(x86_image, "vnc", graphics={"protocol": "vnc", "password": PASSWORD}, video="vga")
    spice = guests.create(x86_image, "spice", graphics="spice", video="qxl")
    vnc.start()
    spice.start()

    shown = vnc.graphics()
    assert (shown.protocol, shown.host, shown.listen, shown.tunnel) == ("vnc", "127.0.0.1", "127.0.0.1", ())
    assert shown.password_required is True
    version, types = _rfb_security_types(shown.port)
    assert version == b"RFB 003.008\n"
    assert types == [2]  # VNC authentication only: the password is in force
    assert _listens_only_on_loopback(shown.port)
    xml = libvirt_conn.lookupByUUIDString(vnc.uuid).XMLDesc(0)
    assert PASSWORD not in xml
    assert PASSWORD not in repr(shown)

    spiced = spice.graphics()
    assert (spiced.protocol, spiced.password_required) == ("spice", False)
    assert spiced.port != shown.port
    reply = _spice_link_reply(spiced.port)
    assert reply[:4] == b"REDQ"
    assert struct.unpack("<II", reply[4:12]) == (2, 2)
    assert _listens_only_on_loopback(spiced.port)

    def firmware_text() -> png.Image | None:
        image = png.decode(vnc.screenshot())
        return image if len(image.colours()) > 1 else None

    image = eventually(firmware_text, timeout=60, what="SeaBIOS's text on the VGA screen", interval=0.5)
    assert (image.width, image.height) == (720, 400)  # VGA text mode: 80x25 cells of 9x16 pixels
    assert len(png.decode(spice.screenshot()).colours()) >= 1
    vnc.pause()
    assert png.decode(vnc.screenshot()).width == 720  # a paused VM still has its last frame
