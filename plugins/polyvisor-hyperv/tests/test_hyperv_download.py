"""Downloads from Hyper-V (issue 16), over both transports against the loopback host: chunks read by a fixed
script with bound parameters, holes kept as holes, hash-checked, bounded by the deadline, nothing half-made."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, TransferProgress
from polyvisor.errors import TimeoutError
from polyvisor_hyperv.commands import script_text
from polyvisor_hyperv.transfers import DOWNLOAD_CHUNK
from polyvisor_hyperv.winrm_shell import powershell_arguments

MiB = 1024 * 1024
HOSTILE = "$(Stop-Computer -Force) ; & 'q' ` é"


def _folder(conn: polyvisor.Connection) -> str:
    return conn.create_pool(f"pvtest-dl-{uuid.uuid4().hex[:8]}").name


def _cleanup(conn: polyvisor.Connection, folder: str) -> None:
    for volume in conn.volumes(folder):
        conn.delete_volume(volume.name, pool=folder)
    conn.delete_pool(folder)


def _put(loopback: Any, conn: polyvisor.Connection, folder: str, name: str, data: bytes) -> str:
    """Write a file into the pool on the host directly (the upload path has its own tests)."""
    from polyvisor_hyperv_loopback.hyperv.storage import write_bytes

    path = next(pool.path for pool in conn.pools() if pool.name == folder)
    assert path is not None
    return write_bytes(loopback.engine.host, f"{path}\\{name}", data, append=False).path


def _sparse(size: int, data_at: tuple[int, ...]) -> bytes:
    out = bytearray(size)
    for offset in data_at:
        block = hashlib.sha256(str(offset).encode()).digest() * 1024  # 32 KiB
        out[offset : offset + len(block)] = block[: size - offset]
    return bytes(out)


def test_hyperv_declares_downloads(conn: polyvisor.Connection) -> None:
    assert conn.supports(Feature.IMAGE_DOWNLOAD)


def test_a_download_arrives_exactly_with_holes_kept_and_never_as_source(
    conn: polyvisor.Connection, loopback_http: Any, tmp_path: Path
) -> None:
    folder = _folder(conn)
    name = f"{HOSTILE}.img"
    content = _sparse(5 * MiB + 4321, (0, 3 * MiB + 17, 5 * MiB))
    seen: list[TransferProgress] = []
    engine = loopback_http.engine
    try:
        _put(loopback_http, conn, folder, name, content)
        scripts_before = len(engine.scripts_run)
        local = conn.download_image(name, tmp_path, pool=folder, progress=seen.append)
        assert local == tmp_path / name
        assert local.read_bytes() == content
        assert [p.name for p in tmp_path.iterdir()] == [name], "no temporary file is left"
        # Chunks 1, 2 and 4 hold no data: they become holes, never written and never sent.
        assert local.stat().st_blocks * 512 < 4 * MiB
        assert [p.done for p in seen] == [MiB, 2 * MiB, 3 * MiB, 4 * MiB, 5 * MiB, len(content)]
        assert all(p.total == len(content) for p in seen)
        assert seen[-1].sent == 2 * DOWNLOAD_CHUNK + 4321
        scripts = engine.scripts_run[scripts_before:]
        assert scripts, "the chunks are read by the fixed script"
        assert all(HOSTILE not in script and "Stop-Computer" not in script for script in scripts)
        assert any(script_text("read-file") in script for script in scripts)
    finally:
        _cleanup(conn, folder)
    assert all(HOSTILE not in argument for argument in powershell_arguments())


def test_a_virtual_hard_disk_downloads_as_the_host_holds_it(
    conn: polyvisor.Connection, loopback_http: Any, tmp_path: Path
) -> None:
    folder = _folder(conn)
    try:
        volume = conn.create_volume("disk.vhdx", 16, pool=folder, format="vhdx")
        local = conn.download_image("disk.vhdx", tmp_path / "copy.vhdx", pool=folder)
        assert local.read_bytes() == loopback_http.engine.host.files.get(volume.path).content()
        empty = _put(loopback_http, conn, folder, "empty.img", b"")
        assert empty.endswith("empty.img")
        assert conn.download_image("empty.img", tmp_path, pool=folder).read_bytes() == b""
    finally:
        _cleanup(conn, folder)


def test_a_damaged_cut_or_interrupted_download_leaves_no_file(
    conn: polyvisor.Connection, loopback_http: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyvisor_hyperv_loopback.hyperv.filesystem import FileEntry

    folder = _folder(conn)
    target = tmp_path / "out.img"
    try:
        _put(loopback_http, conn, folder, "x.img", os.urandom(3 * MiB))
        with pytest.raises(TimeoutError):
            conn.download_image("x.img", target, pool=folder, timeout=0.001)
        assert list(tmp_path.iterdir()) == []

        class Interrupted(Exception):
            pass

        def interrupt(progress: TransferProgress) -> None:
            raise Interrupted

        with pytest.raises(Interrupted):
            conn.download_image("x.img", target, pool=folder, progress=interrupt)
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(polyvisor.NotFoundError):
            conn.download_image("missing.img", target, pool=folder)
        # The host's hash disagrees with what arrived: nothing is kept.
        monkeypatch.setattr(FileEntry, "sha256", lambda self: hashlib.sha256(b"other").hexdigest().upper())
        with pytest.raises(polyvisor.BackendError, match="not the file on the host"):
            conn.download_image("x.img", target, pool=folder)
        assert list(tmp_path.iterdir()) == []
    finally:
        monkeypatch.undo()
        _cleanup(conn, folder)
