"""Fixtures for real-guest tests: a libvirtd connection, a per-test name prefix, polyvisor guests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .support import (
    GUEST_ROOT,
    NOCLOUD_SEED,
    SETUP_HINT,
    TEST_PREFIX,
    URI,
    VIRTIO_BALLOON,
    GuestImage,
    cleanup,
    ensure_environment,
    open_connection,
    unavailable,
)

if TYPE_CHECKING:
    import libvirt

    from polyvisor import Connection

    from .cloudguest import CloudGuest, CloudImage, KeyPair
    from .prometheus import PrometheusServer
    from .pvguest import Guests


@pytest.fixture
def libvirt_conn() -> Iterator[libvirt.virConnect]:
    """A connection to libvirtd (qemu:///system); fails under CI=true when absent."""
    connection = open_connection()
    yield connection
    connection.close()


@pytest.fixture
def name_prefix(libvirt_conn: libvirt.virConnect) -> Iterator[str]:
    """A unique `pvtest-xxxxxxxx-` prefix; everything named with it is removed afterwards."""
    # Unique per test so concurrent sessions never clean up each other's guests.
    unique = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"
    yield unique
    cleanup(libvirt_conn, unique)


@pytest.fixture
def x86_image() -> GuestImage:
    """The x86_64 guest (fails under CI=true when the environment or image is missing)."""
    return ensure_environment("x86_64")


@pytest.fixture
def x86_seed_image() -> GuestImage:
    """The x86_64 guest, built with NoCloud seed support (an older build fails under CI=true, saying to rebuild)."""
    return ensure_environment("x86_64", (NOCLOUD_SEED,))


@pytest.fixture
def x86_balloon_image() -> GuestImage:
    """The x86_64 guest with its virtio balloon driver (an older build fails under CI=true, saying to rebuild)."""
    return ensure_environment("x86_64", (VIRTIO_BALLOON,))


@pytest.fixture
def arm_image() -> GuestImage:
    """The aarch64 guest (fails under CI=true when the environment or image is missing)."""
    return ensure_environment("aarch64")


@pytest.fixture
def pv_conn(libvirt_conn: libvirt.virConnect) -> Iterator[Connection]:
    """A polyvisor connection to the same libvirtd."""
    import polyvisor

    with polyvisor.connect(URI) as conn:
        yield conn


@pytest.fixture
def guests(pv_conn: Connection, libvirt_conn: libvirt.virConnect, name_prefix: str) -> Iterator[Guests]:
    """Creates guests named with the test's prefix; every trace of them is removed afterwards."""
    from .pvguest import guests as make_guests

    with make_guests(pv_conn, libvirt_conn, name_prefix) as made:
        yield made


@pytest.fixture
def conformance_spec(x86_seed_image: GuestImage) -> dict[str, Any]:
    """The x86_64 conformance spec (x86_seed_image checks the environment and the image's seed support)."""
    path = GUEST_ROOT / x86_seed_image.arch / "conformance-spec.json"
    if not path.exists():
        unavailable(f"no {path}; {SETUP_HINT.format(arch=x86_seed_image.arch)}")
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


# --- the real cloud guest (scripts/build-cloud-image): shared, since each boot costs about a minute of TCG ---


@pytest.fixture(scope="session")
def cloud_image() -> CloudImage:
    """The Debian 12 cloud guest's disk and facts (fails under CI=true when it was not built)."""
    from .cloudguest import ensure_cloud_image

    return ensure_cloud_image()


@pytest.fixture(scope="session")
def cloud_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """OpenSSH key pairs for the session: ``default`` (the seed's keys, for the image's default user), ``own`` (a
    key the user's cloud-config carries) and ``extra`` (for a user the cloud-config adds)."""
    from .cloudguest import make_keypair

    directory = tmp_path_factory.mktemp("cloud-keys")
    return {name: make_keypair(directory, name) for name in ("default", "own", "extra")}


@pytest.fixture(scope="session")
def cloud_guests(cloud_image: CloudImage, cloud_keys: dict[str, KeyPair]) -> Iterator[dict[str, CloudGuest]]:
    """Booted cloud guests whose real cloud-init has finished, shared by the session's tests (booted together).

    ``yaml``: a ``#cloud-config`` with users, write_files and runcmd, written in the shapes that keys appended to
    user-data once broke (a quoted ``"ssh_authorized_keys"`` key, an indented root, a ``...`` document end), the
    seed's keys in meta-data, meta-data values at cloud-init's edges, a 63-character host label, a static
    network-config. ``json``: the JSON form of ``#cloud-config``. Their seeds: :mod:`.cloudseeds`.
    """
    import polyvisor

    from .cloudguest import boot
    from .cloudseeds import guest_specs
    from .pvguest import guests as make_guests

    raw = open_connection()
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"
    try:
        with polyvisor.connect(URI) as conn, make_guests(conn, raw, prefix) as made:
            yield boot(conn, raw, made, guest_specs(cloud_image, prefix, cloud_keys))
    finally:
        cleanup(raw, prefix)
        raw.close()


@pytest.fixture(scope="session")
def cloud_guest(cloud_guests: dict[str, CloudGuest]) -> CloudGuest:
    """The shared cloud guest with the ``#cloud-config`` YAML seed (see ``cloud_guests``)."""
    return cloud_guests["yaml"]


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus server for the session, on 127.0.0.1, scraping every second what a test adds."""
    from .prometheus import PrometheusServer

    server = PrometheusServer(tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.close()
