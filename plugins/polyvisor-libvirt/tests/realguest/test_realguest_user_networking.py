"""User-mode NICs on real QEMU: the forwards listen on the host's loopback from every start, a port another VM
holds leaves the VM as it was, and a restore sets them again (the tiny guest; the cloud guest's SSH through a
forward is in test_realguest_cli_ssh.py)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polyvisor import AlreadyExistsError, BackendError, NicSpec, PowerState

if TYPE_CHECKING:
    from .pvguest import Guests
    from .support import GuestImage


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Whether something holds 127.0.0.1:port (binding it fails with EADDRINUSE)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def test_forwards_listen_from_each_start_and_a_held_port_leaves_the_vm_stopped(
    guests: Guests, x86_image: GuestImage
) -> None:
    tcp, udp = free_port(), free_port()
    nic = NicSpec(kind="user", forwards=(f"{tcp}:22", f"{udp}:53/udp"))  # type: ignore[arg-type]
    vm = guests.create(x86_image, "usernet", nics=(nic,))
    assert [(f["host_port"], f["guest_port"], f["protocol"]) for f in vm.info().extra["forwards"]] == [
        (tcp, 22, "tcp"),
        (udp, 53, "udp"),
    ]
    assert not listening(tcp)
    vm.start()
    assert vm.info().state is PowerState.RUNNING
    assert listening(tcp)
    assert listening(udp, socket.SOCK_DGRAM)

    rival = guests.create(x86_image, "usernet-rival", nics=(NicSpec(kind="user", forwards=(f"{tcp}:80",)),))  # type: ignore[arg-type]
    with pytest.raises(AlreadyExistsError, match=rf"host port 127\.0\.0\.1:{tcp}/tcp is in use"):
        rival.start()
    assert rival.info().state is PowerState.STOPPED  # the start was undone

    vm.stop()
    assert not listening(tcp)
    vm.start()
    assert listening(tcp)
    vm.save()
    assert not listening(tcp)
    vm.start()  # a restore is a new QEMU process: the forwards are set again
    assert vm.info().state is PowerState.RUNNING
    assert listening(tcp)

    # Now the rival finds the port held while restoring: it is saved again, not left running or stopped.
    vm.stop()
    rival.start()
    rival.save()
    vm.start()
    with pytest.raises(AlreadyExistsError):
        rival.start()
    assert rival.info().state is PowerState.SAVED


def test_a_port_below_1024_says_qemu_may_not_bind_it(guests: Guests, x86_image: GuestImage) -> None:
    # QEMU runs as libvirt-qemu; the kernel lets such a user bind from net.ipv4.ip_unprivileged_port_start on.
    unprivileged_from = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    assert unprivileged_from > 1022, "this host lets every user bind port 1022: the case cannot arise here"
    vm = guests.create(x86_image, "usernet-low", nics=(NicSpec(kind="user", forwards=("1022:22",)),))  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="below 1024"):
        vm.start()
    assert vm.info().state is PowerState.STOPPED
