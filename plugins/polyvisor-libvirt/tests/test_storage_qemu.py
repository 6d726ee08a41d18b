"""Storage against libvirtd's real storage driver (``qemu:///system``): pools and volumes, sparse uploads and
downloads, interrupted uploads (a deadline, a callback that gives up, a killed client), volumes in use.

Every test makes a ``dir`` pool of its own, ``pvtest-pool-<hex>``, and removes it with all it holds afterwards, also
when the test fails: a pool left behind breaks every later run that relies on the host's only pool.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

import polyvisor
from polyvisor import Connection, InUseError, TimeoutError, TransferProgress, VolumeFormat
from polyvisor.storage import PARTIAL_PREFIX
from polyvisor.testing import eventually

pytestmark = pytest.mark.libvirtd

URI = "qemu:///system"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def conn() -> Iterator[Connection]:
    """One connection for the module (opening one probes the host for seconds)."""
    with polyvisor.connect(URI) as connection:
        yield connection


def _remove_pool(name: str) -> None:
    """Remove the pool ``name`` with everything in it, whatever state a failed test left it in (raw libvirt)."""
    raw = libvirt.open(URI)
    try:
        for dom in raw.listAllDomains(0):
            if dom.name().startswith(name):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        try:
            found = raw.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            return
        if not found.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                found.create(0)
        with contextlib.suppress(libvirt.libvirtError):
            found.refresh(0)
            for volume in found.listAllVolumes(0):
                with contextlib.suppress(libvirt.libvirtError):
                    volume.delete(0)
        with contextlib.suppress(libvirt.libvirtError):
            found.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            found.delete(libvirt.VIR_STORAGE_POOL_DELETE_NORMAL)
        with contextlib.suppress(libvirt.libvirtError):
            found.undefine()
        assert name not in raw.listStoragePools() + raw.listDefinedStoragePools(), f"pool {name} is still defined"
    finally:
        raw.close()


@pytest.fixture
def pool(conn: Connection) -> Iterator[str]:
    """A dir pool of this test's own (in libvirt's image directory, where a new pool goes by default); it, its
    volumes and VMs named after it are removed afterwards, also when the test or the product's delete fails."""
    name = f"pvtest-pool-{uuid.uuid4().hex[:8]}"
    try:
        conn.create_pool(name)
        yield name
    finally:
        _remove_pool(name)


def _sparse(path: Path, size: int, data: dict[int, int]) -> bytes:
    with path.open("wb") as out:
        out.truncate(size)
        for offset, length in data.items():
            out.seek(offset)
            out.write(os.urandom(length))
    return path.read_bytes()


def test_a_sparse_upload_sends_only_data_and_downloads_with_holes(conn: Connection, pool: str, tmp_path: Path) -> None:
    local = tmp_path / "disk.img"
    content = _sparse(local, 256 * MIB, {0: MIB, 100 * MIB: 3 * MIB, 256 * MIB - 4096: 4096})
    seen: list[TransferProgress] = []
    volume = conn.upload_image(local, pool=pool, progress=seen.append)
    assert (volume.name, volume.format, volume.capacity) == ("disk.img", VolumeFormat.RAW, 256 * MIB)
    assert seen[-1] == TransferProgress(256 * MIB, 256 * MIB, 4 * MIB + 4096), "holes are not sent"
    assert volume.allocation < 16 * MIB, "the holes stay holes on the host"
    back = conn.download_image("disk.img", tmp_path / "back.img", pool=pool)
    assert back.read_bytes() == content
    assert back.stat().st_blocks * 512 < 16 * MIB, "and holes again on the client"
    assert [v.name for v in conn.volumes(pool)] == ["disk.img"]


def test_a_qcow2_upload_is_probed_and_clones_from_it(conn: Connection, pool: str, tmp_path: Path) -> None:
    local = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(local), "1G"], check=True)
    volume = conn.upload_image(local, pool=pool)
    assert (volume.format, volume.capacity) == (VolumeFormat.QCOW2, 1024 * MIB)
    vm = conn.create({"name": f"{pool}-vm", "disks": [{"image": volume, "clone": "linked", "pool": pool}]})
    with pytest.raises(InUseError) as refused:
        conn.delete_volume("base.qcow2", pool=pool)
    assert refused.value.users == (f"{pool}-vm",)
    assert f"{pool}-vm" in str(refused.value)
    vm.delete(storage=True)
    conn.delete_volume("base.qcow2", pool=pool)


def test_the_host_side_copy_gives_the_same_volume(
    conn: Connection, pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for a remote host: the client cannot rename the file, so libvirt copies it under the final name.
    monkeypatch.setattr(os, "access", lambda *_args, **_kwargs: False)
    local = tmp_path / "copy.img"
    content = _sparse(local, 32 * MIB, {MIB: MIB})
    volume = conn.upload_image(local, pool=pool)
    assert (volume.name, volume.capacity) == ("copy.img", 32 * MIB)
    assert [v.name for v in conn.volumes(pool)] == ["copy.img"]
    assert Path(volume.path).read_bytes() == content


def test_a_deadline_or_a_callback_that_gives_up_leaves_nothing(conn: Connection, pool: str, tmp_path: Path) -> None:
    local = tmp_path / "big.img"
    local.write_bytes(os.urandom(12 * MIB))
    with pytest.raises(TimeoutError):
        conn.upload_image(local, pool=pool, timeout=0)

    def give_up(progress: TransferProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        conn.upload_image(local, pool=pool, progress=give_up)
    assert conn.volumes(pool) == []


_KILLED_CLIENT = textwrap.dedent(
    """
    import sys, threading, polyvisor
    conn = polyvisor.connect(sys.argv[1])
    def stall(progress):
        print("sending", flush=True)
        threading.Event().wait()  # stands still until killed, mid-upload
    conn.upload_image(sys.argv[2], pool=sys.argv[3], progress=stall)
    """
)


def test_a_killed_client_leaves_only_a_partial_volume(conn: Connection, pool: str, tmp_path: Path) -> None:
    local = tmp_path / "killed.img"
    local.write_bytes(os.urandom(12 * MIB))
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_CLIENT, URI, str(local), pool], stdout=subprocess.PIPE, text=True
    ) as client:
        try:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "sending"
        finally:
            client.kill()

    def only_partial() -> list[str]:
        names = [v.name for v in conn.volumes(pool) if v.partial]
        assert names, "the unfinished upload is listed"
        return names

    partial = eventually(only_partial, timeout=30)
    assert all(name.startswith(PARTIAL_PREFIX) and name.endswith("killed.img") for name in partial)
    assert "killed.img" not in [v.name for v in conn.volumes(pool)]
    for name in partial:
        conn.delete_volume(name, pool=pool)


def test_a_pool_with_volumes_is_not_deleted(conn: Connection, pool: str) -> None:
    conn.create_volume("held.qcow2", 8, pool=pool)
    with pytest.raises(InUseError, match=r"held\.qcow2"):
        conn.delete_pool(pool)
    assert pool in [p.name for p in conn.pools()]


def test_a_pool_is_made_started_and_deleted_with_its_directory(conn: Connection) -> None:
    name = f"pvtest-pool-{uuid.uuid4().hex[:8]}"
    try:
        made = conn.create_pool(name)
        assert (made.kind, made.path, made.active) == ("dir", f"/var/lib/libvirt/images/{name}", True)
        assert made.capacity is not None
        assert made.available is not None
        assert made.available <= made.capacity
        assert Path(f"/var/lib/libvirt/images/{name}").is_dir()
        conn.delete_pool(name)
        assert name not in [p.name for p in conn.pools()]
        assert not Path(f"/var/lib/libvirt/images/{name}").exists()
    finally:
        _remove_pool(name)
