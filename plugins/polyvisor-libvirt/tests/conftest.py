"""Fixtures: a polyvisor connection to libvirt's in-process test driver (a fresh private hypervisor each time)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import polyvisor
from polyvisor import Connection
from polyvisor_libvirt.backend import LibvirtBackend

TEST_URI = "test:///default"


@pytest.fixture
def conn() -> Iterator[Connection]:
    """A connection to a fresh test hypervisor."""
    with polyvisor.connect(TEST_URI) as connection:
        yield connection


@pytest.fixture
def backend(conn: Connection) -> LibvirtBackend:
    """The libvirt backend behind ``conn``."""
    assert isinstance(conn.backend, LibvirtBackend)
    return conn.backend
