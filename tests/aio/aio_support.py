"""What the asyncio tests share besides fixtures: the backends to run on, and skipping or failing by CI."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest


def require(component: str, error: BaseException | str) -> None:
    """Skip for a missing component; fail under ``CI=true``, where every component must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{component} is required under CI=true: {error}")
    pytest.skip(f"{component} is not available: {error}")


@dataclass(frozen=True)
class Target:
    """One backend to run a scenario on: its URI and connection options."""

    name: str
    uri: str
    options: dict[str, Any] = field(default_factory=dict)

    def vm_name(self) -> str:
        """A VM name no other test uses (libvirt's test:///default is shared by the whole process)."""
        return f"aio-{uuid.uuid4().hex[:10]}"
