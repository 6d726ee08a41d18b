"""Pause/resume, managed save/restore and memory snapshots of a running guest, through polyvisor's API.

The guest prints a numbered heartbeat line every half second, so the tests see it keep running, and see a
reverted guest continue from the snapshot's count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from polyvisor import VM, Feature, PowerState
from polyvisor.metrics import VMStats, rates
from polyvisor.testing import eventually

from .pvguest import WITH_HEARTBEAT, agent_addresses, heartbeats, wait_heartbeat_lines, wait_marker

if TYPE_CHECKING:
    import libvirt

    from .pvguest import Guests
    from .support import GuestImage


Recorder = Callable[[str, object], None]


def test_pause_resume_save_restore_keep_the_guest_alive(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage, record_property: Recorder
) -> None:
    vm = guests.create(x86_image, "mem", cmdline=WITH_HEARTBEAT)
    vm.start()
    wait_marker(vm, x86_image)
    before = wait_heartbeat_lines(vm, after=0)

    assert vm.pause().state is PowerState.PAUSED
    assert vm.resume().state is PowerState.RUNNING
    seen = wait_heartbeat_lines(vm, after=len(before))
    assert seen[-1] > before[-1]
    running_sample = check_counters_grow(vm, libvirt_conn)

    started = time.monotonic()
    status = vm.save()
    save_s = time.monotonic() - started
    assert status.state is PowerState.SAVED
    assert vm.info().has_saved_state
    assert libvirt_conn.lookupByUUIDString(vm.uuid).hasManagedSaveImage(0)
    saved_count = len(heartbeats(vm.console_output()))

    started = time.monotonic()
    assert vm.start().state is PowerState.RUNNING
    restore_s = time.monotonic() - started
    assert not libvirt_conn.lookupByUUIDString(vm.uuid).hasManagedSaveImage(0)
    after = wait_heartbeat_lines(vm, after=saved_count)
    # The same boot continues: the count goes on from where it was saved instead of starting again at 1.
    assert after[saved_count] == after[saved_count - 1] + 1, after[saved_count - 3 :]
    assert any(a.address == "127.0.0.1" for a in agent_addresses(vm))  # the agent answers again
    restored = rates(running_sample, vm.stats())  # a restore is a new QEMU process: its counters may restart
    assert restored.cpu_percent is not None
    assert 0.0 <= restored.cpu_percent <= 100.0

    vm.stop()
    record_property("save_s", round(save_s, 2))
    record_property("restore_s", round(restore_s, 2))
    print(f"managed save {save_s:.2f} s, restore {restore_s:.2f} s")


def check_counters_grow(vm: VM, raw: libvirt.virConnect) -> VMStats:
    """The running heartbeat guest's counters: CPU time grows, its boot read its disk, and libvirt agrees."""
    import libvirt

    first = vm.stats()
    assert first.cpu_time_ns is not None
    assert first.cpus is not None
    assert first.vcpu_times_ns is not None
    assert len(first.vcpu_times_ns) == first.cpus
    disk = next(disk for disk in first.disks if disk.name == "vda")
    assert disk.read_bytes is not None
    assert disk.read_bytes > 0
    assert first.memory.current_bytes is not None
    assert first.memory.rss_bytes is not None

    def grown() -> VMStats | None:
        later = vm.stats()
        assert later.cpu_time_ns is not None
        # Over a second or more: the heartbeat guest runs its vCPUs twice a second, so its share is above zero.
        grew = later.cpu_time_ns > (first.cpu_time_ns or 0) and later.sampled_at - first.sampled_at >= 1.0
        return later if grew else None

    second = eventually(grown, timeout=15, what="the guest's CPU time to grow", interval=0.2)
    ((_, record),) = raw.domainListGetStats([raw.lookupByUUIDString(vm.uuid)], libvirt.VIR_DOMAIN_STATS_CPU_TOTAL)
    assert int(record["cpu.time"]) >= (second.cpu_time_ns or 0)  # read after it: never behind polyvisor's
    rated = rates(first, second)
    assert not rated.restarted
    assert rated.cpu_percent is not None
    assert 0.0 < rated.cpu_percent <= 100.0
    assert rated.host_cpu_percent is not None
    assert 0.0 < rated.host_cpu_percent <= 100.0
    assert vm.uuid in {sample.uuid for sample in vm.connection.stats()}
    return second


def test_memory_snapshot_of_running_guest_reverts_to_the_running_moment_and_deletes(
    guests: Guests, x86_image: GuestImage, record_property: Recorder
) -> None:
    vm = guests.create(x86_image, "snap", cmdline=WITH_HEARTBEAT)
    assert vm.capabilities().supports(Feature.SNAPSHOT_MEMORY)
    vm.start()
    wait_marker(vm, x86_image)
    wait_heartbeat_lines(vm, after=0)

    started = time.monotonic()
    snap = vm.snapshot("alive", memory=True, description="running guest")
    snapshot_s = time.monotonic() - started
    assert snap.has_memory
    assert snap.state is PowerState.RUNNING
    assert snap.is_current
    at_snapshot = heartbeats(vm.console_output())[-1]
    later = wait_heartbeat_lines(vm, after=len(heartbeats(vm.console_output())), more=4)
    assert later[-1] >= at_snapshot + 4

    started = time.monotonic()
    assert vm.revert("alive").state is PowerState.RUNNING
    revert_s = time.monotonic() - started
    resumed = wait_heartbeat_lines(vm, after=len(later))[len(later) :]
    # Back at the snapshot's moment: the count restarts from (about) where it was then, not from the latest.
    assert resumed[0] <= at_snapshot + 2 < later[-1], (at_snapshot, later[-1], resumed)
    assert resumed[1] == resumed[0] + 1

    tree = vm.snapshots()
    assert [s.name for s in tree] == ["alive"]
    assert tree.current is not None
    vm.delete_snapshot("alive")
    assert len(vm.snapshots()) == 0
    assert vm.state() is PowerState.RUNNING
    vm.stop()
    record_property("snapshot_s", round(snapshot_s, 2))
    record_property("revert_s", round(revert_s, 2))
    print(f"memory snapshot {snapshot_s:.2f} s, revert {revert_s:.2f} s")


def test_a_guest_saved_while_paused_starts_running(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    import libvirt

    vm = guests.create(x86_image, "psave", cmdline=WITH_HEARTBEAT)
    vm.start()
    wait_marker(vm, x86_image)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)

    assert vm.pause().state is PowerState.PAUSED
    assert vm.save().state is PowerState.SAVED
    saved_count = len(heartbeats(vm.console_output()))
    # start() waits for "running": a guest restored paused would make it time out.
    assert vm.start(timeout=30).state is PowerState.RUNNING
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    wait_heartbeat_lines(vm, after=saved_count)  # and it really runs: the heartbeat goes on

    # An image saved while paused by another client, which records "paused" in it, comes back running too.
    assert vm.pause().state is PowerState.PAUSED
    dom.managedSave(libvirt.VIR_DOMAIN_SAVE_PAUSED)
    assert vm.state() is PowerState.SAVED
    saved_count = len(heartbeats(vm.console_output()))
    assert vm.start(timeout=30).state is PowerState.RUNNING
    wait_heartbeat_lines(vm, after=saved_count)
    vm.stop()


def test_a_save_cut_off_by_its_deadline_is_aborted_and_the_guest_keeps_running(
    libvirt_conn: libvirt.virConnect, guests: Guests, x86_image: GuestImage
) -> None:
    import libvirt

    from polyvisor import TimeoutError

    vm = guests.create(x86_image, "cut", cmdline=WITH_HEARTBEAT)
    vm.start()
    wait_marker(vm, x86_image)
    dom = libvirt_conn.lookupByUUIDString(vm.uuid)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="the job was aborted"):
        vm.save(timeout=0.05)
    assert time.monotonic() - started < 0.05 + 1.0  # the contract's bound: the timeout plus a second
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert not dom.hasManagedSaveImage(0)
    count = len(heartbeats(vm.console_output()))
    wait_heartbeat_lines(vm, after=count)  # the guest still runs
    vm.stop()
