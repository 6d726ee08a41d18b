"""Fixtures of the asyncio tests, and the hook that runs ``async def`` tests.

Each ``async def`` test runs in a fresh event loop (``asyncio.run``), bounded by :data:`TEST_TIMEOUT`. The
project takes no pytest-asyncio: installed next to a configuration that does not set its
``asyncio_default_fixture_loop_scope``, its deprecation warning is an error under ``filterwarnings = error``
and stops every pytest run, and these tests need no async fixtures: they open connections in the test body.

``target`` is each backend in turn: ``memory://``, libvirt's ``test:///default`` and the loopback Hyper-V host
(started once per session). A missing component skips its tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from aio_support import Target, require

TEST_TIMEOUT = 120.0
"""Seconds an async test may take before it fails (longer than any verb's own deadline in these tests)."""

HYPERV_USER = "aio-admin"
HYPERV_PASSWORD = "Aio-Pa55!;$(x)"  # PowerShell metacharacters, which must never matter


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test to its end in a new event loop."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    wanted = inspect.signature(function).parameters
    arguments = {name: value for name, value in pyfuncitem.funcargs.items() if name in wanted}

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await function(**arguments)

    asyncio.run(bounded())
    return True


@pytest.fixture(scope="session")
def loopback_hyperv() -> Iterator[Any]:
    """A loopback Windows/Hyper-V host on plain HTTP (NTLM with message encryption), for the whole session."""
    try:
        import polyvisor_hyperv.backend  # noqa: F401  # the client side must be there too
        from polyvisor_hyperv_loopback import LoopbackHost
    except ImportError as error:
        require("the Hyper-V backend and its loopback host", error)
    try:
        host = LoopbackHost(HYPERV_USER, HYPERV_PASSWORD).start()
    except Exception as error:
        require("the loopback Hyper-V host", error)
    try:
        yield host
    finally:
        host.close()


def _libvirt_target() -> Target:
    try:
        import polyvisor_libvirt.backend  # noqa: F401
    except ImportError as error:
        require("the libvirt backend", error)
    return Target("libvirt-test", "test:///default")


def _target(request: pytest.FixtureRequest, name: str) -> Target:
    if name == "memory":
        return Target("memory", f"memory:///aio-{uuid.uuid4().hex}")
    if name == "libvirt-test":
        return _libvirt_target()
    host = request.getfixturevalue("loopback_hyperv")
    uri = f"hyperv://{HYPERV_USER}@127.0.0.1:{host.port}/?transport=psrp&scheme=http"
    return Target("hyperv", uri, {"password": HYPERV_PASSWORD})


HYPERV = pytest.param("hyperv", marks=pytest.mark.loopback)
"""The loopback Hyper-V host as a target: its cases need the host (marker ``loopback``)."""


@pytest.fixture(params=["memory", "libvirt-test", HYPERV])
def target(request: pytest.FixtureRequest) -> Target:
    """Each backend in turn."""
    return _target(request, request.param)


@pytest.fixture(params=["memory", HYPERV])
def stubborn_target(request: pytest.FixtureRequest) -> Target:
    """Each backend that can model a guest ignoring shutdown (label ``polyvisor.test/guest=ignore-shutdown``).

    libvirt's test driver shuts every guest down at once; real QEMU guests that ignore it are the conformance
    kit's business (``--polyvisor-stubborn-spec``).
    """
    return _target(request, request.param)


@pytest.fixture
def libvirt_test() -> Target:
    """libvirt's test driver (``test:///default``)."""
    return _libvirt_target()


@pytest.fixture
def memory() -> Target:
    """A fresh in-memory host."""
    return Target("memory", f"memory:///aio-{uuid.uuid4().hex}")
