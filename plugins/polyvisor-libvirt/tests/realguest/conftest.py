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
