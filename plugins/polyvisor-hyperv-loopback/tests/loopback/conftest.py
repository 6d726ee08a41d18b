"""Fixtures: loopback hosts (backed by a stub engine) and clients configured for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from polyvisor_hyperv_loopback import LoopbackHost

from ._clients import PASSWORD, USER
from ._stub_engine import StubEngine


@pytest.fixture(scope="module")
def stub_engine() -> StubEngine:
    return StubEngine()


def _host(engine: StubEngine, **kwargs: Any) -> Iterator[LoopbackHost]:
    with LoopbackHost(USER, PASSWORD, engine=engine, **kwargs) as host:
        yield host


@pytest.fixture(scope="module")
def http_host(stub_engine: StubEngine) -> Iterator[LoopbackHost]:
    """HTTP, AllowUnencrypted=false (Windows' default), Basic allowed."""
    yield from _host(stub_engine)


@pytest.fixture(scope="module")
def open_http_host(stub_engine: StubEngine) -> Iterator[LoopbackHost]:
    """HTTP with AllowUnencrypted=true."""
    yield from _host(stub_engine, allow_unencrypted=True)


@pytest.fixture(scope="module")
def https_host(stub_engine: StubEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackHost]:
    """HTTPS with a throw-away CA."""
    yield from _host(stub_engine, https=True, state_dir=tmp_path_factory.mktemp("https-host"))


@pytest.fixture
def fresh_http_host(stub_engine: StubEngine) -> Iterator[LoopbackHost]:
    """A host of its own, for tests that count requests or drop connections."""
    yield from _host(stub_engine, allow_unencrypted=True)
