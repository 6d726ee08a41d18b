"""The package's shape: the backend class is a facade over its rooms, as the Hyper-V backend's is."""

from __future__ import annotations

from pathlib import Path

import polyvisor_libvirt

PACKAGE = Path(polyvisor_libvirt.__file__).parent


def test_the_backend_class_is_a_facade() -> None:
    assert len((PACKAGE / "backend.py").read_text(encoding="utf-8").splitlines()) <= 400
