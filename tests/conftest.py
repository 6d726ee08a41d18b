"""Shared fixtures of the core's tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import polyvisor
from polyvisor import Connection, Plugins
from polyvisor.hookspecs import hookimpl


class ToyPlugin:
    """Registers the in-memory toy backend for ``toy://`` URIs."""

    @hookimpl
    def polyvisor_register_backends(self, registry: polyvisor.plugins.BackendRegistry) -> None:
        registry.add("toy", "toy_backend:ToyBackend", description="in-memory toy backend")


@pytest.fixture
def toy_plugins() -> Plugins:
    plugins = Plugins(load_entry_points=False)
    plugins.register(ToyPlugin(), name="toy")
    return plugins


@pytest.fixture
def toy(toy_plugins: Plugins) -> Iterator[Connection]:
    with polyvisor.connect("toy:///", plugins=toy_plugins) as conn:
        yield conn
