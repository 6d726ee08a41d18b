"""libvirt's events on the application's asyncio loop: an application that registered ``libvirtaio`` gets them there.

Each case runs in a process of its own (``libvirtaio_app.py``): libvirt keeps the first event-loop
implementation a process registers, for good, and this test process already runs the default one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from .support import GUEST_ROOT, TEST_PREFIX, cleanup, ensure_environment, open_connection

APP = Path(__file__).parent / "libvirtaio_app.py"


def run_app(uri: str, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(APP), uri, json.dumps(spec)], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"the libvirtaio application failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_events_came_through_libvirtaio(result: dict[str, Any]) -> None:
    assert result["kind"] == "asyncio"
    # No thread of polyvisor's runs libvirt's loop, so every event seen was dispatched by the asyncio loop.
    assert "polyvisor-libvirt-events" not in result["threads"]
    assert result["events"], "the stream delivered no event for the VM"
    assert result["events"][-1]["state"] == "running"
    assert result["final"] == "stopped"


def test_the_test_driver_delivers_its_events_on_the_application_s_loop() -> None:
    spec = {"name": f"aio-native-{uuid.uuid4().hex[:8]}", "memory_mib": 64}
    assert_events_came_through_libvirtaio(run_app("test:///default", spec))


def test_without_libvirtaio_polyvisor_runs_the_default_loop_in_its_thread() -> None:
    from polyvisor_libvirt.eventloop import EventLoopKind, ensure_event_loop

    assert ensure_event_loop() is EventLoopKind.DEFAULT_THREAD  # this process registered nothing itself
    import threading

    assert "polyvisor-libvirt-events" in {thread.name for thread in threading.enumerate()}


def test_libvirtd_s_events_reach_the_application_s_loop() -> None:
    """qemu:///system: libvirtd's socket is watched by the asyncio loop; a real TCG guest starts and stops."""
    ensure_environment("x86_64")
    spec = json.loads((GUEST_ROOT / "x86_64" / "conformance-spec.json").read_text())
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}-"
    raw = open_connection()
    try:
        result = run_app("qemu:///system", {**spec, "name": f"{prefix}aio"})
    finally:
        cleanup(raw, prefix)
        raw.close()
    assert_events_came_through_libvirtaio(result)
