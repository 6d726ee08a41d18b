"""The asyncio page's example runs, on libvirt's test driver and in memory, and says what the page promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "asyncio_walk.py"


@pytest.mark.parametrize("uri", ["test:///default", "memory:///aio-docs"])
def test_the_asyncio_example_runs(uri: str) -> None:
    if uri.startswith("test:") and os.environ.get("CI", "").lower() != "true":  # under CI a missing backend fails
        pytest.importorskip("polyvisor_libvirt.backend")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), uri], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "started: ['aio-demo-0=running', 'aio-demo-1=running', 'aio-demo-2=running']",
        "events: running ['aio-demo-0', 'aio-demo-1', 'aio-demo-2']",
        "cancelled the wait; the VM is running",
        "left: []",
    ]


def test_the_asyncio_page_includes_the_example_and_is_in_the_toctree() -> None:
    page = (ROOT / "docs" / "asyncio.md").read_text(encoding="utf-8")
    assert "```{literalinclude} examples/asyncio_walk.py" in page
    assert "\nasyncio\n" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
