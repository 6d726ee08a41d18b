"""docs/remote-image-to-ready.md against a KVM host reached over SSH (issue 16, "the whole job over the wire").

The page's console block runs here with its example names swapped for the test's. The example script uploads the
Debian cloud guest's disk (scripts/build-cloud-image), a file on this machine, with ``conn.upload_image`` to
``qemu:///system`` reached as ``qemu+ssh://`` through this test's own OpenSSH sshd on 127.0.0.1
(plugins/polyvisor-libvirt/tests/remote/servers.py). The project's wire proxy sits in front of the sshd and counts
the bytes that cross the SSH connection: at least the image's data must, since the upload takes no local socket.
The script makes a linked clone of the upload in a ``pvtest-job-`` pool of its own, boots it once (TCG) and waits
until cloud-init has finished (read through the guest agent over the same connection). Then a real ``ssh -J`` logs
in through the sshd and the guest's user-mode forward, and the page's ``polyvisor`` commands delete the VM with its
storage and the uploaded image. The pool, and anything left in it, is removed afterwards, also when the test fails.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polyvisor.testing.wire import FaultyProxy

from . import clissh
from .cloudguest import BOOT_TIMEOUT, REPO
from .support import URI, cleanup, open_connection, unavailable

if TYPE_CHECKING:
    from .cloudguest import CloudImage, KeyPair

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))

from servers import MissingComponent, PrivateSshd  # the path above makes the remote tests' servers importable

Recorder = Callable[[str, object], None]
PAGE = REPO / "docs" / "remote-image-to-ready.md"
SCRIPT = REPO / "docs" / "examples" / "remote_image_to_ready.py"
PAGE_URI = "qemu+ssh://root@kvm01.example.com/system?keyfile=/home/ops/.ssh/id_ed25519"
PAGE_HOST = "kvm01.example.com"
PAGE_IMAGE = "debian-12-genericcloud-amd64.qcow2"
PAGE_KEY = "~/.ssh/id_ed25519.pub"
PAGE_POOL = "default"
PAGE_VM = "web1"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sshd() -> Iterator[PrivateSshd]:
    """OpenSSH's sshd on 127.0.0.1 in front of the system libvirtd: the "remote" KVM host."""
    if shutil.which("ssh") is None:
        unavailable("the OpenSSH client is not installed (Debian package openssh-client)")
    root = Path(tempfile.mkdtemp(prefix="pvj-", dir="/tmp"))
    try:
        server = PrivateSshd(root / "ssh")
    except MissingComponent as error:
        unavailable(str(error))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _remove_pool(name: str) -> None:
    """Remove the VMs named after the pool, then the pool with everything in it (raw libvirt)."""
    import libvirt

    raw = open_connection()
    try:
        cleanup(raw, name)
        try:
            pool = raw.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            return
        with contextlib.suppress(libvirt.libvirtError):
            if not pool.isActive():
                pool.create(0)
            pool.refresh(0)
        for volume in pool.listAllVolumes(0) if pool.isActive() else []:
            with contextlib.suppress(libvirt.libvirtError):
                volume.delete(0)
        for step in (pool.destroy, lambda: pool.delete(libvirt.VIR_STORAGE_POOL_DELETE_NORMAL), pool.undefine):
            with contextlib.suppress(libvirt.libvirtError):
                step()
        assert name not in raw.listStoragePools() + raw.listDefinedStoragePools(), f"pool {name} is still defined"
    finally:
        raw.close()


@pytest.fixture(scope="module")
def wire(sshd: PrivateSshd) -> Iterator[tuple[FaultyProxy, Path]]:
    """A proxy in front of the sshd (no faults: it only counts), and an ``ssh`` wrapper that knows the sshd's key
    under the proxy's port, as a user's known_hosts knows a host's."""
    with FaultyProxy(("127.0.0.1", sshd.port), seed=16) as proxy:
        host_key = " ".join(sshd.host_key.with_suffix(".pub").read_text().split()[:2])
        known = sshd.root / "known_hosts.proxy"
        known.write_text(f"[127.0.0.1]:{proxy.port} {host_key}\n")
        config = sshd.root / "ssh_config.proxy"
        config.write_text(
            f"Host *\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  IdentitiesOnly yes\n  ConnectTimeout 5\n"
        )
        wrapper = sshd.root / "ssh-proxy"
        wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {config} "$@"\n')
        wrapper.chmod(0o755)
        yield proxy, wrapper


@pytest.fixture
def pool() -> Iterator[str]:
    """A dir pool of this test's own on qemu:///system; it and all it holds are removed afterwards."""
    import polyvisor

    name = f"pvtest-job-{uuid.uuid4().hex[:8]}"
    try:
        with polyvisor.connect(URI) as conn:
            conn.create_pool(name)
        yield name
    finally:
        _remove_pool(name)


def _ssh_config(directory: Path, sshd: PrivateSshd, known: Path, guest_key: KeyPair) -> Path:
    """What a user's ~/.ssh/config holds for the page's ``ssh -J``: the host's key and known key, the guest's key,
    and a known_hosts of the test's own that takes the new guest's key (both hops read this file)."""
    config = directory / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {sshd.key}\n  IdentityFile {guest_key.private}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {directory / 'known_hosts.guest'} {known}\n  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 30\n"
    )
    return config


def _pool_volumes(name: str) -> list[str]:
    raw = open_connection()
    try:
        found = raw.storagePoolLookupByName(name)
        found.refresh(0)
        return sorted(volume.name() for volume in found.listAllVolumes(0))
    finally:
        raw.close()


def test_the_pages_job_uploads_over_ssh_boots_a_clone_to_ready_and_cleans_up(
    sshd: PrivateSshd,
    wire: tuple[FaultyProxy, Path],
    pool: str,
    cloud_image: CloudImage,
    cloud_keys: dict[str, KeyPair],
    tmp_path: Path,
    record_property: Recorder,
) -> None:
    assert cloud_image.default_user == "debian", "the page logs in as debian, the image's default user"
    laptop = tmp_path / "laptop"  # the client's directory, holding the image under the page's name
    laptop.mkdir()
    (laptop / PAGE_IMAGE).symlink_to(cloud_image.disk)
    proxy, wrapper = wire
    uri = f"qemu+ssh://root@127.0.0.1:{proxy.port}/system?keyfile={sshd.key}&command={wrapper}"
    name = f"{pool}-web1"
    swaps = {
        PAGE_URI: uri,
        PAGE_HOST: f"127.0.0.1:{proxy.port}",
        PAGE_KEY: str(cloud_keys["default"].private) + ".pub",
        PAGE_POOL: pool,
        PAGE_VM: name,
        "2222": str(clissh.free_port()),
    }
    job, login, delete_vm, delete_image = clissh.steps(clissh.block("remote-image-kvm", PAGE), swaps)

    assert job.argv[:2] == ["python", "remote_image_to_ready.py"], job.argv
    argv = [sys.executable, str(SCRIPT), *job.argv[2:], "--accelerator", "tcg"]  # nested KVM is not dependable
    before = proxy.carried[0]
    ran = clissh.finish(clissh.start(argv, cwd=laptop), argv, BOOT_TIMEOUT + 300)
    try:
        assert ran.returncode == 0, ran.explain()
        assert job.matches(ran.stdout), (job.expected, ran.explain())
        upload = re.search(r": ([\d.]+) MiB sent for a ([\d.]+) MiB file in ([\d.]+) s$", ran.stdout.splitlines()[0])
        assert upload is not None, ran.stdout
        sent_mib, seconds = float(upload.group(1)), float(upload.group(3))
        record_property("upload_seconds", seconds)
        record_property("upload_sent_mib", sent_mib)
        record_property("script_seconds", round(ran.seconds, 1))
        print(f"the page's script: {ran.seconds:.1f} s in all; the upload {seconds:.1f} s for {sent_mib:.1f} MiB")

        # The image's data crossed the SSH connection (encrypted, so a little more), not a local socket.
        carried = proxy.carried[0] - before
        assert carried >= sent_mib * MiB > 0.9 * cloud_image.disk.stat().st_blocks * 512, (carried, sent_mib)
        record_property("ssh_bytes_to_host", carried)

        # A linked clone of the uploaded volume, in the pool: its overlay's backing file is the upload.
        raw = open_connection()
        try:
            xml = raw.lookupByName(name).XMLDesc(0)
        finally:
            raw.close()
        assert re.search(rf"<backingStore type='file'[^>]*>\s*<format type='qcow2'/>\s*<source file='[^']*/{pool}/"
                         rf"{re.escape(PAGE_IMAGE)}'", xml), xml  # fmt: skip

        config = _ssh_config(tmp_path, sshd, sshd.root / "known_hosts.proxy", cloud_keys["default"])
        assert login.argv[0] == "ssh", login.argv
        ssh = clissh.run(["ssh", "-F", str(config), *login.argv[1:]])
        assert ssh.returncode == 0, ssh.explain()
        assert login.matches(ssh.stdout), (login.expected, ssh.explain())
        record_property("ssh_login_seconds", round(ssh.seconds, 2))
    finally:
        # The page's cleanup, run also when a step above failed (the pool fixture removes what it leaves).
        deleted = [clissh.run(clissh.polyvisor(step.argv)) for step in (delete_vm, delete_image)]
    for step, done in zip((delete_vm, delete_image), deleted, strict=True):
        assert done.returncode == 0, done.explain()
        assert step.matches(done.stdout), (step.expected, done.explain())
    assert _pool_volumes(pool) == [], "the clone, the seed and the uploaded image are gone"
    record_property("delete_seconds", round(sum(done.seconds for done in deleted), 1))
