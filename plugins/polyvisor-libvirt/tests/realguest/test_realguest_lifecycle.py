"""Boot, graceful shutdown (ACPI and agent), shutdown timeouts, events and delete, through polyvisor's API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from polyvisor import Connection, EventKind, Feature, PowerState, ShutdownMode, TimeoutError

from .pvguest import NO_ACPID, agent_addresses, wait_console, wait_marker

if TYPE_CHECKING:
    import libvirt

    from polyvisor import Event, EventStream

    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]


def next_event(stream: EventStream, uuid: str, wanted: Callable[[Event], bool], timeout: float = 30.0) -> Event:
    """Return the first event of this VM matching ``wanted``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        event = stream.get(timeout=remaining)
        if event is not None and event.uuid == uuid and wanted(event):
            return event
    raise AssertionError(f"no matching event for {uuid} within {timeout} s")


def test_boot_to_marker_then_acpi_shutdown_waits_for_the_guest_and_delete_leaves_nothing(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_image: GuestImage,
    record_property: Recorder,
) -> None:
    assert pv_conn.supports(Feature.EVENTS)
    vm = guests.create(x86_image, "acpi")
    footprint = guests.footprint(vm)
    assert footprint.volumes
    assert all(path.endswith(".qcow2") for path in footprint.volumes)
    assert vm.info().extra["domain_type"] == "qemu"  # TCG, as asked

    with pv_conn.watch() as events:
        started = time.monotonic()
        assert vm.start().state is PowerState.RUNNING
        assert next_event(events, vm.uuid, lambda e: e.detail == "started").state is PowerState.RUNNING
        wait_marker(vm, x86_image)
        boot_s = time.monotonic() - started

        started = time.monotonic()
        status = vm.shutdown(mode=ShutdownMode.ACPI, timeout=60)
        shutdown_s = time.monotonic() - started
        assert status.state is PowerState.STOPPED
        # libvirt says why: the guest powered itself off (not a destroy), i.e. shutdown really waited for it.
        assert status.reason == "shutdown", status
        assert next_event(events, vm.uuid, lambda e: e.detail == "stopped").kind is EventKind.STATE

        name = vm.name()
        vm.delete(storage=True)
        assert next_event(events, vm.uuid, lambda e: e.kind is EventKind.UNDEFINED).name == name
    assert not pv_conn.exists(vm.uuid)
    assert footprint.leftovers(libvirt_conn) == []
    record_property("boot_s", round(boot_s, 2))
    record_property("acpi_shutdown_s", round(shutdown_s, 2))
    print(f"boot to marker {boot_s:.2f} s, ACPI shutdown {shutdown_s:.2f} s")


def test_acpi_press_during_boot_is_repeated_until_the_guest_listens(
    guests: Guests, x86_image: GuestImage, record_property: Recorder
) -> None:
    vm = guests.create(x86_image, "early")
    vm.start()
    # Right after start the guest's acpid is not running yet: the first press is lost, a repeat is not.
    started = time.monotonic()
    assert vm.shutdown(mode="acpi", timeout=90).state is PowerState.STOPPED
    record_property("early_acpi_shutdown_s", round(time.monotonic() - started, 2))


def test_agent_shutdown_and_delete_without_storage_keeps_the_volume(
    pv_conn: Connection,
    libvirt_conn: libvirt.virConnect,
    guests: Guests,
    x86_image: GuestImage,
    record_property: Recorder,
) -> None:
    vm = guests.create(x86_image, "agent", cmdline=NO_ACPID)  # no acpid: only the agent can stop it
    assert vm.capabilities().supports(Feature.SHUTDOWN_AGENT)
    vm.start()
    wait_marker(vm, x86_image)
    agent_addresses(vm)  # the agent answers

    started = time.monotonic()
    assert vm.shutdown(mode=ShutdownMode.AGENT, timeout=60).state is PowerState.STOPPED
    record_property("agent_shutdown_s", round(time.monotonic() - started, 2))

    footprint = guests.footprint(vm)
    vm.delete()
    assert not pv_conn.exists(vm.uuid)
    assert footprint.leftovers(libvirt_conn) == [f"volume {path}" for path in footprint.volumes]
    footprint.remove(libvirt_conn)
    assert footprint.leftovers(libvirt_conn) == []


def test_shutdown_timeout_leaves_a_guest_that_ignores_acpi_running(
    guests: Guests, x86_image: GuestImage, record_property: Recorder
) -> None:
    vm = guests.create(x86_image, "deaf", cmdline=NO_ACPID)
    vm.start()
    wait_console(vm, lambda text: "acpid not started" in text and x86_image.marker in text, "a guest without acpid")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="left as it is"):
        vm.shutdown(mode=ShutdownMode.ACPI, timeout=5)  # long enough for the core to repeat the press
    assert time.monotonic() - started >= 5
    assert vm.state() is PowerState.RUNNING
    assert vm.stop().state is PowerState.STOPPED
    record_property("timeout_s", round(time.monotonic() - started, 2))
