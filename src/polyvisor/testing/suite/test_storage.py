"""The host's storage: pools and volumes as values, uploads and downloads, pools and volumes made and deleted.

Each case runs where its capability is declared (``storage``, ``image-upload``, ``image-download``,
``pool-write``, ``volume-write``, ``volume-resize``), in the host's default pool, with names under the kit's
prefix; everything made is deleted again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polyvisor import (
    VM,
    Connection,
    Feature,
    InUseError,
    NotFoundError,
    TransferProgress,
    ValidationError,
    VolumeFormat,
)
from polyvisor.testing.fixtures import NAME_PREFIX
from polyvisor.testing.suite._support import require

MIB = 1024 * 1024
VMFactory = Callable[..., VM]

HOSTILE_NAMES = ["../escape.img", "a/b.img", "a\\b.img", "nul\x00.img", "C:evil.img", "..", " lead.img", "CON.img"]
"""Names that could leave the pool on some host, or that some host would not store verbatim: always refused."""
ODD_NAME = "pvconf-odd $(Stop-Computer) 'q' ; & é.img"
"""A name full of shell and PowerShell metacharacters, which every host stores exactly."""


def _name(tag: str) -> str:
    return f"{NAME_PREFIX}{tag}-{uuid.uuid4().hex[:8]}"


def _sparse_image(path: Path, size: int, data_at: tuple[int, ...]) -> bytes:
    """Write a raw image of ``size`` bytes, holes except 64 KiB of data at each offset; return its bytes."""
    with path.open("wb") as out:
        out.truncate(size)
        for offset in data_at:
            out.seek(offset)
            out.write(hashlib.sha256(str(offset).encode()).digest() * 2048)
    return path.read_bytes()


@pytest.fixture
def cleanup_volumes(polyvisor_connection: Connection) -> Iterator[list[str]]:
    """Names of volumes (in the default pool) to delete after the test, whatever happened."""
    names: list[str] = []
    yield names
    if not polyvisor_connection.supports(Feature.VOLUME_WRITE):
        return
    present = {volume.name for volume in polyvisor_connection.volumes()}
    for name in names:
        if name in present:
            polyvisor_connection.delete_volume(name)


def test_pools_and_volumes_are_values(polyvisor_connection: Connection) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE)
    pools = conn.pools()
    assert pools, "a host with storage has at least one pool"
    names = [pool.name for pool in pools]
    assert len(names) == len(set(names))
    for pool in pools:
        assert pool.kind
        for size in (pool.capacity, pool.allocation, pool.available):
            assert size is None or size >= 0
        for volume in conn.volumes(pool.name):
            assert volume.pool == pool.name
            assert isinstance(volume.format, VolumeFormat)
            assert volume.capacity >= 0
            assert volume.allocation >= 0
            assert os.fspath(volume) == volume.path
    with pytest.raises(NotFoundError):
        conn.volumes(_name("nopool"))


def test_upload_reports_progress_and_downloads_byte_for_byte(
    polyvisor_connection: Connection, tmp_path: Path, cleanup_volumes: list[str]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.IMAGE_UPLOAD)
    local = tmp_path / "sparse.img"
    content = _sparse_image(local, 9 * MIB, (0, 5 * MIB, 9 * MIB - 64 * 1024))
    name = _name("up") + ".img"
    cleanup_volumes.append(name)
    seen: list[TransferProgress] = []
    volume = conn.upload_image(local, name=name, progress=seen.append)
    assert (volume.name, volume.format, volume.partial) == (name, VolumeFormat.RAW, False)
    assert volume.capacity == len(content)
    listed = {v.name: v for v in conn.volumes(volume.pool)}
    assert listed[name].path == volume.path
    assert not any(v.partial and v.name.endswith(name) for v in listed.values())
    assert seen, "progress is reported"
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == len(content)
    assert 0 < seen[-1].sent <= len(content)
    if conn.supports(Feature.IMAGE_DOWNLOAD):
        back = conn.download_image(name, tmp_path / "back.img")
        assert back.read_bytes() == content
        assert {p.name for p in tmp_path.iterdir()} == {"sparse.img", "back.img"}, "no temporary file is left"


def test_an_interrupted_upload_leaves_nothing_under_its_name(
    polyvisor_connection: Connection, tmp_path: Path, cleanup_volumes: list[str]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.IMAGE_UPLOAD)
    local = tmp_path / "full.img"
    local.write_bytes(os.urandom(1024 * 1024) * 12)
    name = _name("cut") + ".img"
    cleanup_volumes.append(name)

    class Interrupted(Exception):
        pass

    def interrupt(progress: TransferProgress) -> None:
        if progress.done < progress.total:
            raise Interrupted

    with pytest.raises(Interrupted):
        conn.upload_image(local, name=name, progress=interrupt)
    names = [v.name for v in conn.volumes()]
    assert name not in names
    assert not [n for n in names if n.endswith(name)], "the temporary volume is removed"


@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_hostile_volume_names_are_refused_before_anything_is_sent(
    polyvisor_connection: Connection, tmp_path: Path, bad: str
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.IMAGE_UPLOAD)
    local = tmp_path / "x.img"
    local.write_bytes(bytes(4096))
    with pytest.raises(ValidationError):
        conn.upload_image(local, name=bad)
    with pytest.raises(ValidationError):
        conn.upload_image(local, name="fine.img", pool=bad)


def test_odd_names_are_stored_exactly(
    polyvisor_connection: Connection, tmp_path: Path, cleanup_volumes: list[str]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.IMAGE_UPLOAD)
    local = tmp_path / "odd.img"
    local.write_bytes(b"polyvisor" * 512)
    cleanup_volumes.append(ODD_NAME)
    volume = conn.upload_image(local, name=ODD_NAME)
    assert volume.name == ODD_NAME
    assert ODD_NAME in [v.name for v in conn.volumes(volume.pool)]


def test_pools_are_created_and_deleted(polyvisor_connection: Connection) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.POOL_WRITE)
    name = _name("pool")
    pool = conn.create_pool(name)
    try:
        assert pool.name == name
        assert name in [p.name for p in conn.pools()]
        assert conn.volumes(name) == []
    finally:
        conn.delete_pool(name)
    assert name not in [p.name for p in conn.pools()]
    with pytest.raises(NotFoundError):
        conn.delete_pool(name)


def test_volumes_are_created_grown_and_deleted(polyvisor_connection: Connection, cleanup_volumes: list[str]) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.VOLUME_WRITE)
    fmt = VolumeFormat.VHDX if conn.capabilities.backend == "Hyper-V" else VolumeFormat.QCOW2
    name = f"{_name('vol')}.{fmt.value}"
    cleanup_volumes.append(name)
    volume = conn.create_volume(name, 16, format=fmt)
    assert (volume.name, volume.format, volume.capacity) == (name, fmt, 16 * MIB)
    if conn.supports(Feature.VOLUME_RESIZE):
        with pytest.raises(ValidationError, match="16 MiB"):
            conn.resize_volume(name, 8)
        assert conn.resize_volume(name, 32).capacity == 32 * MIB
        assert {v.name: v.capacity for v in conn.volumes()}[name] == 32 * MIB
    conn.delete_volume(name)
    assert name not in [v.name for v in conn.volumes()]
    with pytest.raises(NotFoundError):
        conn.delete_volume(name)


def test_a_volume_a_vm_uses_is_not_deleted(
    polyvisor_connection: Connection, polyvisor_vm_factory: VMFactory, cleanup_volumes: list[str]
) -> None:
    conn = polyvisor_connection
    require(conn, Feature.STORAGE, Feature.VOLUME_WRITE, Feature.CREATE)
    fmt = VolumeFormat.VHDX if conn.capabilities.backend == "Hyper-V" else VolumeFormat.QCOW2
    name = f"{_name('used')}.{fmt.value}"
    cleanup_volumes.append(name)
    volume = conn.create_volume(name, 16, format=fmt)
    vm = polyvisor_vm_factory("used", disks=[{"image": volume}])
    with pytest.raises(InUseError) as refused:
        conn.delete_volume(name)
    assert vm.seen_name in str(refused.value)
    assert vm.seen_name in refused.value.users
    assert name in [v.name for v in conn.volumes()]
    vm.delete()
    conn.delete_volume(name)
