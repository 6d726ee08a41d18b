"""Fleet.upload_image (issue 16): one local image to many hosts at once, each host's volume or error reported on its
own, progress per host, a dead or hanging host bounded by its own timeout, a bad file refused before any host."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

import pytest

import polyvisor
from polyvisor import Fleet, TransferProgress
from polyvisor.aio import AsyncFleet
from polyvisor.errors import ConnectionError, NotFoundError, TimeoutError

from .conftest import MixedFleet

pytestmark = [pytest.mark.loopback, pytest.mark.libvirtd]

HOSTS = ["hv-psrp", "hv-winrm", "dead", "hang"]
MIB = 1024 * 1024
UPLOAD_TIMEOUT = 12.0


def _image(tmp_path: Path) -> tuple[Path, str]:
    local = tmp_path / f"pvtest-fleet-{uuid.uuid4().hex[:8]}.img"
    local.write_bytes(os.urandom(MIB // 4) * 4)
    return local, local.name


def _remove(fleet: Fleet, name: str) -> None:
    for host in ("hv-psrp", "hv-winrm"):
        conn = fleet.connection(host)
        if name in [volume.name for volume in conn.volumes()]:
            conn.delete_volume(name)


def test_one_image_reaches_every_host_that_answers(mixed: MixedFleet, tmp_path: Path) -> None:
    local, name = _image(tmp_path)
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def progress(host: str, report: TransferProgress) -> None:
        with lock:
            seen.setdefault(host, []).append(report.done)

    with mixed.fleet() as fleet:
        try:
            result = fleet.upload_image(local, hosts=HOSTS, progress=progress, timeout=UPLOAD_TIMEOUT)
            for host in ("hv-psrp", "hv-winrm"):
                volume = result[host].unwrap()
                assert (volume.name, volume.capacity, volume.partial) == (name, MIB, False)
                assert seen[host][-1] == MIB, host
            assert isinstance(result["dead"].error, ConnectionError)
            assert isinstance(result["hang"].error, TimeoutError)
            assert result["hang"].elapsed < UPLOAD_TIMEOUT + 1.0, "the hanging host is cut off at the upload's timeout"
            assert set(result.errors) == {"dead", "hang"}
        finally:
            _remove(fleet, name)


def test_a_missing_file_is_refused_before_any_host_is_asked(mixed: MixedFleet, tmp_path: Path) -> None:
    with mixed.fleet() as fleet, pytest.raises(NotFoundError, match="does not exist on this machine"):
        fleet.upload_image(tmp_path / "nothing.img", hosts=HOSTS)


def test_the_asyncio_fleet_uploads_to_every_host_at_once(mixed: MixedFleet, tmp_path: Path) -> None:
    local, name = _image(tmp_path)

    async def run() -> dict[str, object]:
        async with AsyncFleet(mixed.hosts, timeout=30) as fleet:
            result = await fleet.upload_image(local, hosts=["hv-psrp", "hv-winrm", "dead"], timeout=60)
            return {r.host: r.value or r.error for r in result.results()}

    outcome = asyncio.run(run())
    with mixed.fleet() as fleet:
        try:
            assert [getattr(outcome[h], "name", None) for h in ("hv-psrp", "hv-winrm")] == [name, name]
            assert isinstance(outcome["dead"], polyvisor.errors.ConnectionError)
        finally:
            _remove(fleet, name)
