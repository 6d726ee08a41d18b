"""Fixtures for real-guest tests: a libvirtd connection and a per-test name prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .support import TEST_PREFIX, cleanup, open_connection

if TYPE_CHECKING:
    import libvirt


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
