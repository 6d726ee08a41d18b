"""The conformance kit's extras for libvirt targets: ``pytest -p polyvisor.testing -p polyvisor_libvirt.testing``.

Load it after ``polyvisor.testing``; it overrides two of the kit's fixtures, as the kit documents:

``--polyvisor-libvirt-base-volume POOL/NAME=SIZE_MIB``
    Make an empty qcow2 volume of that size in a storage pool of the target for the clone cases, and delete it
    when the session ends. libvirt (and so QEMU) can read a pool volume whatever the test machine's permissions,
    and the test driver, whose storage lives in the testing process, can only clone a base made in that process.
    Without the option, ``--polyvisor-base-image`` applies as usual.

``polyvisor_seed_reader``
    Reads a VM's cloud-init seed back from its storage pool (``virStorageVol.download``): the seed is the CD-ROM
    among the volumes the VM owns. Where the driver cannot download volumes (the test driver) there is no reader,
    and the kit checks only that a seeded VM is created, starts and is deleted.

Both open a connection of their own with ``libvirt.open(URI)``: for URIs libvirt opens without credentials.

``polyvisor_volume_paths``
    The volumes a VM owns (``info().details.extra["owned_volumes"]``): the ones polyvisor made for it, which
    ``delete(storage=True)`` must remove.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import libvirt
import pytest

from polyvisor import VM, Connection
from polyvisor.testing.fixtures import SeedReader, VolumePaths, backend_seed_reader, extra_disk_paths
from polyvisor_libvirt import domainxml
from polyvisor_libvirt.backend import LibvirtBackend

__all__ = [
    "polyvisor_base_image",
    "polyvisor_seed_reader",
    "polyvisor_volume_paths",
    "pytest_addoption",
    "pytest_configure",
]

MIB = 1024 * 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--polyvisor-libvirt-base-volume``."""
    group = parser.getgroup("polyvisor", "polyvisor conformance kit")
    group.addoption(
        "--polyvisor-libvirt-base-volume",
        metavar="POOL/NAME=SIZE_MIB",
        help="make an empty qcow2 base volume of this size in a storage pool of the target for the clone cases "
        "(deleted afterwards); instead of --polyvisor-base-image",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a malformed ``--polyvisor-libvirt-base-volume`` before anything runs."""
    value = config.getoption("--polyvisor-libvirt-base-volume", default=None)
    if value:
        _parse_volume(str(value))


def _parse_volume(value: str) -> tuple[str, str, int]:
    spec, _, size = value.rpartition("=")
    pool, _, name = spec.partition("/")
    if not pool or not name or "/" in name or not size.isdigit() or int(size) <= 0:
        raise pytest.UsageError(f"--polyvisor-libvirt-base-volume {value!r} is not POOL/NAME=SIZE_MIB")
    return pool, name, int(size)


@pytest.fixture(scope="session")
def polyvisor_base_image(request: pytest.FixtureRequest, polyvisor_uri: str) -> Iterator[str]:
    """The kit's base image, or a qcow2 volume made for the session (``--polyvisor-libvirt-base-volume``)."""
    value = request.config.getoption("--polyvisor-libvirt-base-volume", default=None)
    if not value:
        path = request.config.getoption("--polyvisor-base-image", default=None)
        if not path:
            pytest.skip("no base image on this target (--polyvisor-base-image)")
        yield str(path)
        return
    pool_name, name, size_mib = _parse_volume(str(value))
    conn = libvirt.open(polyvisor_uri)  # held open: the test driver's storage lives as long as a connection
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        xml = ET.Element("volume")
        ET.SubElement(xml, "name").text = name
        ET.SubElement(xml, "capacity", unit="bytes").text = str(size_mib * MIB)
        ET.SubElement(ET.SubElement(xml, "target"), "format", type="qcow2")
        volume = pool.createXML(domainxml.to_text(xml), 0)
        try:
            yield str(volume.path())
        finally:
            volume.delete(0)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def polyvisor_seed_reader(polyvisor_connection: Connection, polyvisor_uri: str) -> Iterator[SeedReader | None]:
    """Read seeds back from the pool: ``reader(vm) -> read``, ``read()`` None once the volume is gone. On a target
    of another backend, the kit's default (the backend's ``seed_iso`` test hook, if any)."""
    if not isinstance(polyvisor_connection.backend, LibvirtBackend):
        yield backend_seed_reader(polyvisor_connection)
        return
    conn = libvirt.open(polyvisor_uri)
    try:
        if not _can_download(conn):
            yield None
            return

        def reader(vm: VM) -> Callable[[], bytes | None]:
            definition = domainxml.parse_definition(conn.lookupByUUIDString(vm.uuid).XMLDesc(0))
            owned = set(definition.owned_volumes)
            seeds = [d.path for d in definition.disks if d.device == "cdrom" and d.path in owned]
            assert len(seeds) == 1, f"{vm.seen_name} has no seed CD-ROM among its volumes ({definition.disks})"
            path = seeds[0]

            def read() -> bytes | None:
                try:
                    volume = conn.storageVolLookupByPath(path)
                except libvirt.libvirtError as error:
                    if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                        return None
                    raise
                return _download(conn, volume)

            return read

        yield reader
    finally:
        conn.close()


@pytest.fixture(scope="session")
def polyvisor_volume_paths(polyvisor_connection: Connection) -> VolumePaths:
    """``paths(vm)``: the volumes the VM owns; on a target of another backend, the kit's default."""
    if not isinstance(polyvisor_connection.backend, LibvirtBackend):
        return extra_disk_paths

    def paths(vm: VM) -> list[str]:
        details = vm.info().details
        return list(details.extra.get("owned_volumes", ())) if details is not None else []

    return paths


def _can_download(conn: libvirt.virConnect) -> bool:
    """Whether the driver streams volumes out (QEMU's storage driver does, the test driver does not)."""
    driver: str = conn.getType()
    return driver != "TEST"


def _download(conn: libvirt.virConnect, volume: libvirt.virStorageVol) -> bytes:
    length = int(volume.info()[1])
    stream = conn.newStream(0)
    chunks: list[bytes] = []
    try:
        volume.download(stream, 0, length, 0)
        while True:
            chunk = stream.recv(1 << 20)
            if not chunk:  # b"" at the end; -2 (would block) never comes from a blocking stream
                break
            if isinstance(chunk, bytes):
                chunks.append(chunk)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    return b"".join(chunks)
