"""A component a test needs and cannot find: a failure under ``CI=true``, a skip on a developer's machine."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "unavailable"]


def in_ci() -> bool:
    """Whether the tests run under CI (``CI=true``), where a missing component is a failure."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Fail under ``CI=true`` (a missing real component must not pass silently there), otherwise skip."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a component the test needs is missing)", pytrace=False)
    pytest.skip(reason)
