"""Storage on Hyper-V (issue 16), over both transports against the loopback host: the host's disk paths and image
folders as pools, uploads written as byte[] chunks and hash-checked, folders and virtual hard disks made and
deleted, files a VM uses kept."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor import InUseError, NotFoundError, TransferProgress, ValidationError, VolumeFormat
from polyvisor.errors import TimeoutError
from polyvisor_hyperv.images import SEED_CHUNK

MiB = 1024 * 1024
HOSTILE = "$(Stop-Computer -Force) ; & 'q' é"


def _host(loopback: Any) -> Any:
    return loopback.engine.host


def _name(tag: str) -> str:
    return f"pvtest-{tag}-{uuid.uuid4().hex[:8]}"


def test_pools_are_the_host_paths_and_its_image_folders(conn: polyvisor.Connection, loopback_http: Any) -> None:
    host = _host(loopback_http)
    folder = _name("folder")
    made = conn.create_pool(folder)
    try:
        assert (made.kind, made.path) == ("folder", f"{host.virtual_hard_disk_path}\\{folder}")
        pools = {pool.name: pool for pool in conn.pools()}
        vhd, vms = pools["VirtualHardDiskPath"], pools["VirtualMachinePath"]
        assert (vhd.kind, vhd.path) == ("virtual-hard-disks", host.virtual_hard_disk_path)
        assert (vms.kind, vms.path) == ("virtual-machines", host.virtual_machine_path)
        assert vhd.capacity == host.drive_capacity
        assert vhd.allocation is not None
        assert vhd.available == vhd.capacity - vhd.allocation
        assert pools[folder].kind == "folder"
        assert conn.volumes(folder) == []
        with pytest.raises(ValidationError, match="path"):
            conn.create_pool(_name("elsewhere"), path="D:\\Images")
        with pytest.raises(ValidationError, match="host's own"):
            conn.delete_pool("VirtualMachinePath")
    finally:
        conn.delete_pool(folder)
    assert folder not in [pool.name for pool in conn.pools()]
    with pytest.raises(NotFoundError, match="no pool named"):
        conn.volumes(folder)


def test_an_upload_arrives_hash_checked_and_never_as_source(
    conn: polyvisor.Connection, loopback_http: Any, tmp_path: Path
) -> None:
    host = _host(loopback_http)
    folder = conn.create_pool(_name("up")).name
    local = tmp_path / "disk.img"
    content = (HOSTILE.encode() * 9000)[: 3 * SEED_CHUNK + 123]
    local.write_bytes(content)
    name = f"{HOSTILE}.img"
    seen: list[TransferProgress] = []
    scripts_before = len(loopback_http.engine.scripts_run)
    try:
        volume = conn.upload_image(local, pool=folder, name=name, progress=seen.append)
        assert (volume.name, volume.pool, volume.format, volume.capacity) == (
            name,
            folder,
            VolumeFormat.RAW,
            len(content),
        )
        entry = host.files.get(volume.path)
        assert bytes(entry.data) == content
        assert [p.done for p in seen] == [SEED_CHUNK, 2 * SEED_CHUNK, 3 * SEED_CHUNK, len(content)]
        scripts = loopback_http.engine.scripts_run[scripts_before:]
        assert not any("Stop-Computer" in script for script in scripts), "no byte or name becomes source"
        assert [v.name for v in conn.volumes(folder)] == [name]
    finally:
        for volume in conn.volumes(folder):
            conn.delete_volume(volume.name, pool=folder)
        conn.delete_pool(folder)


def test_a_damaged_or_interrupted_upload_leaves_nothing(
    conn: polyvisor.Connection, loopback_http: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyvisor_hyperv_loopback.hyperv.filesystem import FileEntry

    folder = conn.create_pool(_name("cut")).name
    local = tmp_path / "cut.img"
    local.write_bytes(os.urandom(2 * SEED_CHUNK))
    try:
        with pytest.raises(TimeoutError):
            conn.upload_image(local, pool=folder, timeout=0)
        # The host's hash disagrees with what was sent: the file is removed and nothing has the final name.
        monkeypatch.setattr(FileEntry, "sha256", lambda self: hashlib.sha256(b"other").hexdigest().upper())
        with pytest.raises(polyvisor.BackendError, match="arrived damaged"):
            conn.upload_image(local, pool=folder)
        assert conn.volumes(folder) == []
    finally:
        conn.delete_pool(folder)


def test_an_image_folder_with_files_is_not_deleted(conn: polyvisor.Connection) -> None:
    folder = conn.create_pool(_name("held")).name
    try:
        conn.create_volume("held.vhdx", 16, pool=folder, format="vhdx")
        with pytest.raises(InUseError, match=r"held\.vhdx"):
            conn.delete_pool(folder)
        with pytest.raises(ValidationError, match="vhdx"):
            conn.create_volume("raw.img", 16, pool=folder, format="raw")
        assert conn.resize_volume("held.vhdx", 32, pool=folder).capacity == 32 * MiB
    finally:
        for volume in conn.volumes(folder):
            conn.delete_volume(volume.name, pool=folder)
        conn.delete_pool(folder)


def test_a_base_image_a_linked_clone_uses_is_not_deleted(
    conn: polyvisor.Connection, tmp_path: Path, vm_name: str
) -> None:
    folder = conn.create_pool(_name("base")).name
    try:
        base = conn.create_volume("base.vhdx", 32, pool=folder, format="vhdx")
        vm = conn.create({"name": vm_name, "disks": [{"image": base, "clone": "linked"}]})
        try:
            with pytest.raises(InUseError) as refused:
                conn.delete_volume("base.vhdx", pool=folder)
            assert refused.value.users == (vm_name,)
            assert vm_name in str(refused.value)
        finally:
            vm.delete(storage=True)
        conn.delete_volume("base.vhdx", pool=folder)
    finally:
        for volume in conn.volumes(folder):
            conn.delete_volume(volume.name, pool=folder)
        conn.delete_pool(folder)
