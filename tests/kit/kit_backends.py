"""A pytest plugin for the kit's own tests, loaded into a kit run with ``-p kit_backends``: it registers the
backends those tests run the kit on, as their entry points would once installed.

``minimal://``
    ``tests/kit/minimal-backend`` (on ``PYTHONPATH``): only the methods every backend must implement.
``leaky://``
    ``memory://`` that declares ``delete-storage`` but keeps every disk file when a VM is deleted with its storage.

``--kit-test-leftover NAME`` creates a VM named NAME on the target before the session, as a crashed earlier run
would have left it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polyvisor_minimal.plugin
import pytest

import polyvisor
from polyvisor.backend import Deadline
from polyvisor.hookspecs import hookimpl
from polyvisor.plugins import default_plugins
from polyvisor.testing.memory import MemoryBackend

if TYPE_CHECKING:
    from polyvisor.plugins import BackendRegistry


class LeakyBackend(MemoryBackend):
    """``memory://``, but ``delete(storage=True)`` leaves the VM's disks where they are."""

    name = "leaky"

    def delete(self, uuid: str, *, storage: bool, deadline: Deadline) -> None:
        super().delete(uuid, storage=False, deadline=deadline)


class _Leaky:
    @hookimpl
    def polyvisor_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("leaky", f"{__name__}:LeakyBackend", description="memory://, keeping disks on delete (tests)")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kit-test-leftover", metavar="NAME", help="create a VM named NAME before the session")


def pytest_configure(config: pytest.Config) -> None:
    plugins = default_plugins()
    plugins.register(polyvisor_minimal.plugin, name="minimal")
    plugins.register(_Leaky(), name="leaky")
    leftover = config.getoption("--kit-test-leftover")
    if leftover:
        with polyvisor.connect(config.getoption("--polyvisor-uri")) as conn:
            conn.create({"name": leftover})
