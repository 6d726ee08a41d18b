"""The pool, volume, network and image modules under ansible-core, on libvirtd's ``qemu:///system`` and the loopback
Hyper-V host over PSRP/HTTPS and the WinRM shell/HTTP.

Each resource is walked the same way: check mode predicts its creation and makes nothing, the task makes it, the
same task again changes nothing, a task that asks for something else of it fails before acting, and it is deleted
(once; a second deletion changes nothing). What the modules did is read back through polyvisor itself. Everything
made is named ``pvtest-ansible-...`` and removed afterwards, also when a test fails.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

import polyvisor

from .conftest import TARGETS, Target
from .support import Ansible

MIB = 1024 * 1024


@pytest.fixture
def resource_name() -> str:
    return f"pvtest-ansible-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool(target: Target, resource_name: str) -> Iterator[str]:
    """A name for a pool the test makes; the pool and its volumes are deleted afterwards."""
    yield resource_name
    with target.connect() as conn:
        if any(pool.name == resource_name for pool in conn.pools()):
            for volume in conn.volumes(resource_name):
                conn.delete_volume(volume.name, pool=resource_name)
            conn.delete_pool(resource_name)


@pytest.fixture
def network(target: Target, resource_name: str) -> Iterator[str]:
    """A name for a network the test makes; deleted afterwards."""
    yield resource_name
    with target.connect() as conn, suppress(polyvisor.NotFoundError):
        conn.delete_network(resource_name)


def _ok(result: dict[str, Any], changed: bool) -> dict[str, Any]:
    assert result["failed"] is False, result
    assert result["changed"] is changed, result
    return result


def _failed(result: dict[str, Any], error_type: str, *words: str) -> None:
    assert result["failed"] is True, result
    assert result["changed"] is False, result
    assert result["error_type"] == error_type, result
    for word in words:
        assert word in result["msg"], result["msg"]


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_pool_and_its_volume_are_made_grown_and_deleted_once(ansible: Ansible, target: Target, pool: str) -> None:
    def pools() -> dict[str, polyvisor.StoragePool]:
        with target.connect() as conn:
            return {found.name: found for found in conn.pools()}

    task = {**target.task, "name": pool}
    predicted, run = ansible.module("pool", task, "--check")
    assert _ok(predicted, True)["pool"]["name"] == pool
    assert pool not in pools()
    made = _ok(ansible.module("pool", task)[0], True)["pool"]
    assert pools()[pool].path == made["path"]
    _ok(ansible.module("pool", task)[0], False)
    _failed(ansible.module("pool", {**task, "path": "/elsewhere"})[0], "ValidationError", "never moves a pool")

    fmt = "vhdx" if target.backend == "Hyper-V" else "qcow2"
    volume = {**target.task, "pool": pool, "name": f"data.{fmt}", "size_mib": 16}
    _ok(ansible.module("volume", volume, "--check")[0], True)
    _failed(ansible.module("volume", {**volume, "size_mib": None})[0], "ValidationError", "give size_mib")
    with target.connect() as conn:
        assert conn.volumes(pool) == []
    made = _ok(ansible.module("volume", volume)[0], True)["volume"]
    assert (made["format"], made["size_mib"]) == (fmt, 16)
    _ok(ansible.module("volume", volume)[0], False)
    grown = _ok(ansible.module("volume", {**volume, "size_mib": 32})[0], True)["volume"]
    assert grown["size_mib"] == 32
    with target.connect() as conn:
        assert [(v.name, v.capacity) for v in conn.volumes(pool)] == [(f"data.{fmt}", 32 * MIB)]
    _failed(ansible.module("volume", {**volume, "size_mib": 16})[0], "ValidationError", "32 MiB", "never shrink")
    other = "raw" if fmt == "qcow2" else "vhd"
    _failed(ansible.module("volume", {**volume, "format": other})[0], "ValidationError", f"is {fmt}, not {other}")

    # A pool that holds a volume is not deleted.
    _failed(ansible.module("pool", {**task, "state": "absent"})[0], "InUseError", f"data.{fmt}")
    assert pool in pools()
    _ok(ansible.module("volume", {**volume, "state": "absent"})[0], True)
    _ok(ansible.module("pool", {**task, "state": "absent"}, "--check")[0], True)
    assert pool in pools()
    gone = _ok(ansible.module("pool", {**task, "state": "absent"})[0], True)
    assert gone["pool"] is None
    assert pool not in pools()
    _ok(ansible.module("pool", {**task, "state": "absent"})[0], False)
    assert target.task.get("password") is None or target.task["password"] not in run.output


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_an_isolated_network_is_made_once_and_deleted_once(ansible: Ansible, target: Target, network: str) -> None:
    def networks() -> dict[str, polyvisor.NetworkInfo]:
        with target.connect() as conn:
            return {found.name: found for found in conn.networks()}

    task = {**target.task, "name": network}
    predicted = _ok(ansible.module("network", task, "--check")[0], True)
    assert predicted["network"]["mode"] == "isolated"
    assert network not in networks()
    made = _ok(ansible.module("network", task)[0], True)["network"]
    assert made["mode"] == "isolated"
    assert networks()[network].mode is polyvisor.NetworkMode.ISOLATED
    _ok(ansible.module("network", task)[0], False)
    _failed(
        ansible.module("network", {**task, "mode": "internal", "subnet": "10.213.77.0/24"})[0],
        "ValidationError",
        "its mode is isolated, not internal",
    )
    _ok(ansible.module("network", {**task, "state": "absent"}, "--check")[0], True)
    assert network in networks()
    _ok(ansible.module("network", {**task, "state": "absent"})[0], True)
    assert network not in networks()
    _ok(ansible.module("network", {**task, "state": "absent"})[0], False)


@pytest.mark.parametrize("target", TARGETS[1:], indirect=True)
def test_a_mode_the_host_lacks_is_refused_in_check_mode_too(ansible: Ansible, target: Target, network: str) -> None:
    task = {**target.task, "name": network, "mode": "nat"}  # NAT is libvirt's; Hyper-V has no NAT switch
    for flags in (["--check"], []):
        result, _run = ansible.module("network", task, *flags)
        _failed(result, "UnsupportedError", "network-nat")
    with target.connect() as conn:
        assert network not in [found.name for found in conn.networks()]


def _image(path: Path, tag: bytes) -> Path:
    """A raw 4 MiB image, holes but for a marked first MiB."""
    with path.open("wb") as out:
        out.truncate(4 * MIB)
        out.write((tag * (MIB // len(tag) + 1))[:MIB])
    return path


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_an_image_is_uploaded_once_and_replaced_only_with_force(
    ansible: Ansible, target: Target, pool: str, tmp_path: Path
) -> None:
    _ok(ansible.module("pool", {**target.task, "name": pool})[0], True)
    src = _image(tmp_path / "base.img", b"polyvisor ansible image one ")
    task = {**target.task, "pool": pool, "src": str(src)}

    predicted = _ok(ansible.module("image", task, "--check")[0], True)
    assert predicted["uploaded"] is False
    with target.connect() as conn:
        assert conn.volumes(pool) == []
    sent = _ok(ansible.module("image", task)[0], True)
    assert sent["uploaded"] is True
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert (sent["image"]["name"], sent["image"]["size_mib"], sent["image"]["sha256"]) == ("base.img", 4, digest)
    with target.connect() as conn:
        (volume,) = conn.volumes(pool)
    assert (volume.name, volume.path, volume.capacity) == ("base.img", sent["image"]["path"], 4 * MIB)

    # The same name and bytes: not sent again (where the host sends images back, the comparison downloads and
    # hashes it; elsewhere it compares format and size).
    with target.connect() as conn:
        downloads = conn.supports(polyvisor.Feature.IMAGE_DOWNLOAD)
    again = _ok(ansible.module("image", task)[0], False)
    assert again["uploaded"] is False
    assert again["compared"] == ("content" if downloads else "size")
    if downloads:
        assert again["image"]["sha256"] == digest
        # Other bytes under the same name: refused, in check mode too, unless force replaces them.
        _image(src, b"polyvisor ansible image two ")
        for flags in (["--check"], []):
            refused, _run = ansible.module("image", task, *flags)
            _failed(refused, "AlreadyExistsError", "other contents", "SHA-256", "force: true")
        # compare: size trusts the same name, format and size.
        _ok(ansible.module("image", {**task, "compare": "size"})[0], False)
        replaced = _ok(ansible.module("image", {**task, "force": True})[0], True)
        assert replaced["image"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        download = tmp_path / "back.img"
        with target.connect() as conn:
            conn.download_image("base.img", download, pool=pool)
        assert download.read_bytes() == src.read_bytes()
    else:
        _failed(ansible.module("image", {**task, "compare": "content"})[0], "UnsupportedError", "image-download")
    # Another size under the same name is another image on every host.
    with src.open("r+b") as grow:
        grow.truncate(8 * MIB)
    _failed(ansible.module("image", task)[0], "AlreadyExistsError", "other contents", "virtual size")
    replaced = _ok(ansible.module("image", {**task, "force": True})[0], True)
    assert replaced["image"]["size_mib"] == 8

    _ok(ansible.module("image", {**target.task, "pool": pool, "name": "base.img", "state": "absent"})[0], True)
    with target.connect() as conn:
        assert conn.volumes(pool) == []
    _ok(ansible.module("image", {**target.task, "pool": pool, "name": "base.img", "state": "absent"})[0], False)
