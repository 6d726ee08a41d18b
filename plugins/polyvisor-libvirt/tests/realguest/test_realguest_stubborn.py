"""A "stubborn" guest, made from `conformance-stubborn-spec.json`, through polyvisor's API (contract 1.0 core).

`scripts/build-guest-image` writes that spec next to `conformance-spec.json`: the same guest with
`polyvisor.shutdown=ignore` on its kernel command line, so its ACPI power-button handler and the agent's
guest-shutdown log a line and do nothing. A graceful shutdown must then time out on time and leave the guest
running; a power-off must still stop it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

import polyvisor
from polyvisor import PowerState, ShutdownMode

from .pvguest import (
    IGNORED_MARKER,
    SHUTDOWN_IGNORE,
    WITH_HEARTBEAT,
    agent_addresses,
    heartbeats,
    wait_console,
    wait_heartbeat_lines,
)
from .support import GUEST_ROOT, SETUP_HINT, unavailable

if TYPE_CHECKING:
    import libvirt

    from polyvisor import Connection

    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]

SHUTDOWN_TIMEOUT = 2.0
# The contract: a verb returns or raises within its timeout (+1 s).
SHUTDOWN_BOUND = SHUTDOWN_TIMEOUT + 1.0


def timeline(records: list[logging.LogRecord]) -> str:
    """The captured log as lines of seconds since its first record, to show where a slow verb spent its time."""
    if not records:
        return "(no log records)"
    first = records[0].created
    return "\n".join(f"{record.created - first:7.3f} {record.name}: {record.getMessage()}" for record in records)


def load_stubborn_spec(image: GuestImage) -> dict[str, Any]:
    """The spec the build script wrote for ``image``'s architecture (fails under CI=true when missing)."""
    path = GUEST_ROOT / image.arch / "conformance-stubborn-spec.json"
    if not path.exists():
        unavailable(f"no {path} (an older build?); {SETUP_HINT.format(arch=image.arch)}")
    spec: dict[str, Any] = json.loads(path.read_text())
    assert SHUTDOWN_IGNORE in spec["kernel"]["cmdline"].split(), spec
    return spec


@pytest.fixture
def stubborn_spec(x86_image: GuestImage) -> dict[str, Any]:
    """The x86_64 stubborn spec (the x86_image fixture checks libvirtd, pool, network and image first)."""
    return load_stubborn_spec(x86_image)


@pytest.mark.parametrize("mode", [ShutdownMode.DEFAULT, ShutdownMode.ACPI, ShutdownMode.AGENT], ids=str)
def test_stubborn_guest_ignores_a_graceful_shutdown_until_it_is_powered_off(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_image: GuestImage,
    stubborn_spec: dict[str, Any],
    mode: ShutdownMode,
    record_property: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = {**stubborn_spec, "name": f"{guests.prefix}stubborn"}
    # The heartbeat shows the guest itself keeps running, not only that the domain is not shut off.
    spec["kernel"] = {**spec["kernel"], "cmdline": f"{spec['kernel']['cmdline']} {WITH_HEARTBEAT}"}
    vm = guests.track(pv_conn.create(spec))
    footprint = guests.footprint(vm)
    assert vm.name() == spec["name"]

    started = time.monotonic()
    assert vm.start().state is PowerState.RUNNING
    wait_console(
        vm,
        lambda text: "graceful shutdown ignored" in text and x86_image.marker in text,
        f"{x86_image.marker} from a guest booted with {SHUTDOWN_IGNORE}",
    )
    boot_s = time.monotonic() - started
    agent_addresses(vm)  # the agent is up, so an agent (or default) shutdown reaches the guest
    beats = len(heartbeats(vm.console_output()))

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="polyvisor")
    started = time.monotonic()
    with pytest.raises(polyvisor.TimeoutError):
        vm.shutdown(timeout=SHUTDOWN_TIMEOUT, mode=mode)
    ignored_s = time.monotonic() - started
    caplog.set_level(logging.WARNING, logger="polyvisor")
    assert ignored_s < SHUTDOWN_BOUND, f"shutdown(timeout={SHUTDOWN_TIMEOUT}) took {ignored_s:.2f} s:\n" + timeline(
        caplog.records
    )
    assert vm.state() is PowerState.RUNNING

    # The request reached the guest and was ignored (not lost), and the guest goes on beating.
    wait_console(vm, lambda text: IGNORED_MARKER in text, "the guest to log the ignored request", timeout=30)
    wait_heartbeat_lines(vm, after=beats, more=2)
    assert vm.state() is PowerState.RUNNING

    started = time.monotonic()
    assert vm.stop().state is PowerState.STOPPED
    stop_s = time.monotonic() - started
    vm.delete(storage=True)
    assert not pv_conn.exists(vm.uuid)
    assert footprint.leftovers(libvirt_conn) == []
    record_property("boot_s", round(boot_s, 2))
    record_property("ignored_shutdown_s", round(ignored_s, 2))
    record_property("stop_s", round(stop_s, 2))
    print(f"stubborn ({mode.value}): marker {boot_s:.2f} s, shutdown gave up after {ignored_s:.2f} s")
