"""A console on a remote host's loopback, reached through the SSH tunnel ``vm.graphics()`` gives: the command is run
as given (an argv list), and the VNC server answers through it with its RFB version."""

from __future__ import annotations

import socket
import subprocess

import pytest
from servers import PrivateSshd

import polyvisor
from polyvisor import VMSpec
from polyvisor.testing import eventually

TRANSPORTS = ("ssh", "libssh")


def _rfb_version(port: int) -> bytes | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            return conn.recv(12) or None
    except OSError:
        return None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_tunnel_graphics_gives_reaches_the_remote_console(sshd: PrivateSshd, transport: str, vm_name: str) -> None:
    with polyvisor.connect(sshd.uri(transport)) as conn:
        vm = conn.create(VMSpec(name=vm_name, memory_mib=64, graphics="vnc"))
        vm.start(timeout=60)
        info = vm.graphics()
        assert (info.listen, info.host) == ("127.0.0.1", "127.0.0.1")
        assert info.tunnel[0] == (str(sshd.ssh_command) if transport == "ssh" else "ssh")
        assert info.tunnel[-2:] == ("--", "127.0.0.1")
        assert info.port != info.host_port or info.tunnel  # the local end is a port of its own
        with subprocess.Popen(info.tunnel, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as tunnel:
            try:
                version = eventually(
                    lambda: _rfb_version(info.port), timeout=20, what=f"RFB through {info.tunnel}", interval=0.2
                )
                assert version == b"RFB 003.008\n"
            finally:
                tunnel.terminate()
        vm.stop(timeout=30)
        vm.delete(timeout=30)
