#!/usr/bin/env python3
"""Uploading a sparse image to a host: polyvisor against ``virsh vol-upload --sparse`` and plain ``scp``.

    bench/bench_upload.py [--size-mib 2048] [--data-mib 200] [--runs 3]

The image is a qcow2 of ``--size-mib`` virtual size made with ``preallocation=metadata`` (its file is as long as
the disk, with holes where nothing was written) holding ``--data-mib`` of random data in 20 extents spread over the
disk: what ``qemu-img convert`` makes of a mostly empty raw disk. Each tool uploads it to the same host, this
machine, in one run:

* polyvisor: ``conn.upload_image()`` into the ``polyvisor-test`` pool over ``qemu+unix:///system``, on a
  connection the process holds open (an application's case; opened once, before the runs);
* polyvisor+connect: ``polyvisor.connect(uri)`` and the upload, in this process: the connection's probe of the
  host (its capabilities XML, about 40 KiB here) counts too;
* polyvisor CLI: ``polyvisor image upload`` as a new process each time, as virsh is (interpreter start and imports
  included);
* virsh: ``vol-create-as`` of an empty raw volume, then ``vol-upload --sparse`` into it (what a user types);
* scp: a private sshd (its own config, host key, client key and port on 127.0.0.1, started and stopped here) and
  ``scp`` into the pool's directory (cipher aes128-gcm, no compression: random data does not compress);
* polyvisor-ssh and virsh-ssh: the same two uploads (on a held connection; ``vol-create-as`` + ``vol-upload
  --sparse``) over ``qemu+ssh://root@127.0.0.1:PORT/system`` through that same sshd, with the same ssh options as
  scp: all three then reach the host through one sshd, and the bytes are counted in front of it.

The bytes on the wire are counted by a relay each client connects through: a Unix socket in front of libvirtd's
for polyvisor and virsh (``?socket=``), a TCP port in front of sshd for scp and the ``qemu+ssh://`` pair,
counting both directions. The relay costs every tool the same copy. Runs alternate; the median wall time and the
bytes of each tool are printed, with polyvisor's ratios to virsh over the same path (target: at most the bytes
virsh sends, at most 1.1x its time) and to scp. Every volume and file
made is named ``pvbench-upload-*`` and removed, also on failure. Needs ``scripts/libvirt-env start`` and root (the
pool's directory belongs to root; sshd needs its privilege separation directory).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt

import polyvisor

POOL = "polyvisor-test"
PREFIX = "pvbench-upload-"
SOCKET = "/var/run/libvirt/libvirt-sock"
MIB = 1024 * 1024
EXTENTS = 20


class Relay:
    """Forward connections from a listening socket to a target, counting the bytes in both directions."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self._listener = listener
        self._connect = connect
        self._lock = threading.Lock()
        self.bytes = 0
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def reset(self) -> int:
        with self._lock:
            count, self.bytes = self.bytes, 0
            return count

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = self._connect()
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(1 << 20)
                if not data:
                    break
                sink.sendall(data)
                with self._lock:
                    self.bytes += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def unix_relay(path: Path, target: str) -> Relay:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target)
        return sock

    return Relay(listener, connect)


def tcp_relay(target_port: int) -> tuple[Relay, int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    return Relay(listener, lambda: socket.create_connection(("127.0.0.1", target_port))), port


def make_image(work: Path, size_mib: int, data_mib: int) -> Path:
    """A qcow2 with metadata preallocated (holes for the unwritten clusters) holding ``data_mib`` random MiB."""
    raw = work / "source.raw"
    stride = size_mib * MIB // EXTENTS
    extent = data_mib * MIB // EXTENTS
    with raw.open("wb") as out:
        out.truncate(size_mib * MIB)
        for index in range(EXTENTS):
            out.seek(index * stride)
            out.write(os.urandom(extent))
    image = work / "image.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "preallocation=metadata", str(raw), str(image)],
        check=True,
    )
    raw.unlink()
    return image


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def private_sshd(work: Path) -> Iterator[tuple[int, Path]]:
    """An sshd of our own on 127.0.0.1 (own config, host key, authorized key, port); yields (port, client key)."""
    keys = work / "ssh"
    keys.mkdir(mode=0o700)
    host_key, client_key = keys / "host_ed25519", keys / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = keys / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port = free_port()
    config = keys / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {keys / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "Compression no",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private sshd did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.05)  # sshd offers no readiness signal but its port
        yield port, client_key
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_polyvisor(uri: str, image: Path, name: str) -> None:
    with polyvisor.connect(uri) as conn:
        conn.upload_image(image, pool=POOL, name=name)


def run_open(conn: polyvisor.Connection, image: Path, name: str) -> None:
    conn.upload_image(image, pool=POOL, name=name)


def run_cli(uri: str, image: Path, name: str) -> None:
    polyvisor_cli = Path(sys.executable).with_name("polyvisor")
    subprocess.run(
        [str(polyvisor_cli), "-c", uri, "image", "upload", str(image), "--pool", POOL, "--name", name],
        check=True,
        capture_output=True,
    )


def run_virsh(uri: str, image: Path, name: str) -> None:
    virsh = ["virsh", "-q", "-c", uri]
    subprocess.run([*virsh, "vol-create-as", POOL, name, "0", "--format", "raw"], check=True, capture_output=True)
    subprocess.run([*virsh, "vol-upload", "--sparse", "--pool", POOL, name, str(image)], check=True)


SSH_OPTIONS = (
    *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"),
    *("-o", "Compression=no", "-c", "aes128-gcm@openssh.com"),
)
"""The ssh options of every tool: no host key kept anywhere, no compression, one cipher."""


def run_scp(port: int, key: Path, image: Path, target: Path) -> None:
    subprocess.run(
        ["scp", "-q", *("-P", str(port), "-i", str(key)), *SSH_OPTIONS, str(image), f"root@127.0.0.1:{target}"],
        check=True,
    )


def ssh_uri(work: Path, port: int, key: Path) -> str:
    """``qemu+ssh://`` to the system libvirtd through the private sshd; ``command=`` gives ssh scp's options."""
    wrapper = work / "ssh-for-libvirt"
    wrapper.write_text(f'#!/bin/sh\nexec ssh {" ".join(SSH_OPTIONS)} "$@"\n')
    wrapper.chmod(0o755)
    return f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={key}&command={wrapper}&no_tty=1"


def remove_volumes(pool: libvirt.virStoragePool, directory: Path) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        pool.refresh(0)
    for volume in pool.listAllVolumes(0):
        if PREFIX in volume.name():  # the final names and the upload's temporary ones
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
    for path in directory.glob(f"*{PREFIX}*"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(libvirt.libvirtError):
        pool.refresh(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=2048, help="the image's virtual size")
    parser.add_argument("--data-mib", type=int, default=200, help="the random data it holds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_upload.py needs root: the pool's directory is root's, and sshd needs /run/sshd")

    raw = libvirt.open("qemu:///system")
    pool = raw.storagePoolLookupByName(POOL)
    directory = Path(ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or "")
    work = Path(tempfile.mkdtemp(prefix="pvbench-upload-"))
    relays: list[Relay] = []
    try:
        image = make_image(work, args.size_mib, args.data_mib)
        apparent, allocated = image.stat().st_size, image.stat().st_blocks * 512
        print(
            f"image: qcow2, {args.size_mib} MiB virtual, {args.data_mib} MiB of data; file {apparent / MIB:.0f} MiB "
            f"long, {allocated / MIB:.0f} MiB allocated"
        )
        libvirt_relay = unix_relay(work / "libvirt-sock", SOCKET)
        relays.append(libvirt_relay)
        uri = f"qemu+unix:///system?socket={work / 'libvirt-sock'}"
        with private_sshd(work) as (sshd_port, key):
            ssh_relay, ssh_port = tcp_relay(sshd_port)
            relays.append(ssh_relay)
            held = polyvisor.connect(uri)
            over_ssh = ssh_uri(work, ssh_port, key)
            held_ssh = polyvisor.connect(over_ssh)
            tools = ("polyvisor", "polyvisor+connect", "polyvisor-cli", "virsh", "polyvisor-ssh", "virsh-ssh", "scp")
            times: dict[str, list[float]] = {tool: [] for tool in tools}
            wire: dict[str, list[int]] = {tool: [] for tool in times}
            for run in range(args.runs):
                tag = secrets.token_hex(3)
                order = list(times) if run % 2 == 0 else list(reversed(times))
                for tool in order:
                    name = f"{PREFIX}{tool}-{tag}.qcow2"
                    relay = ssh_relay if tool in ("scp", "polyvisor-ssh", "virsh-ssh") else libvirt_relay
                    relay.reset()
                    started = time.perf_counter()
                    if tool == "polyvisor":
                        run_open(held, image, name)
                    elif tool == "polyvisor+connect":
                        run_polyvisor(uri, image, name)
                    elif tool == "polyvisor-cli":
                        run_cli(uri, image, name)
                    elif tool == "virsh":
                        run_virsh(uri, image, name)
                    elif tool == "polyvisor-ssh":
                        run_open(held_ssh, image, name)
                    elif tool == "virsh-ssh":
                        run_virsh(over_ssh, image, name)
                    else:
                        run_scp(ssh_port, key, image, directory / name)
                    times[tool].append(time.perf_counter() - started)
                    wire[tool].append(relay.reset())
                remove_volumes(pool, directory)
            held.close()
            held_ssh.close()
        seconds = {tool: statistics.median(values) for tool, values in times.items()}
        carried = {tool: statistics.median(values) for tool, values in wire.items()}
        print(f"{'tool':<18} {'median s':>9} {'bytes on the wire':>18}   (runs: {args.runs})")
        for tool in times:
            print(f"{tool:<18} {seconds[tool]:>9.2f} {carried[tool]:>18,.0f}")
        for tool in ("polyvisor", "polyvisor+connect", "polyvisor-cli"):
            print(
                f"{tool} / virsh: time {seconds[tool] / seconds['virsh']:.2f}x (target <= 1.1x), "
                f"bytes {carried[tool] / carried['virsh']:.4f}x (target <= 1); / scp: time "
                f"{seconds[tool] / seconds['scp']:.2f}x, bytes {carried[tool] / carried['scp']:.3f}x"
            )
        print(
            f"over the private sshd: polyvisor-ssh / virsh-ssh: time "
            f"{seconds['polyvisor-ssh'] / seconds['virsh-ssh']:.2f}x (target <= 1.1x), bytes "
            f"{carried['polyvisor-ssh'] / carried['virsh-ssh']:.4f}x (target <= 1); / scp: time "
            f"{seconds['polyvisor-ssh'] / seconds['scp']:.2f}x, bytes {carried['polyvisor-ssh'] / carried['scp']:.3f}x"
        )
    finally:
        for relay in relays:
            relay.close()
        remove_volumes(pool, directory)
        raw.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
