"""Tests that need H2's real engine: fail under CI when it is missing, skip otherwise."""

from __future__ import annotations

import importlib
import os

import pytest


def require_real_engine() -> None:
    """Skip (or fail when CI=true) unless ``polyvisor_hyperv_loopback.engine`` imports."""
    try:
        importlib.import_module("polyvisor_hyperv_loopback.engine")
    except ImportError as exc:
        message = f"polyvisor_hyperv_loopback.engine is not importable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
