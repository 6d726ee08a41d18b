"""Cancelling a task that awaits a verb: the wait stops at once, and the VM is left as the hypervisor has it.

Nothing is rolled back and nothing is powered off; a request already handed to a thread runs to its end in the
background, bounded by the verb's own deadline. "At once" is checked as "within a second", far below every
verb's deadline here, so a wait that went on would fail the test rather than slow it down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aio_support import Target

import polyvisor
import polyvisor.aio
from polyvisor import PowerState, ShutdownMode
from polyvisor.aio import AsyncConnection
from polyvisor.backend import Deadline, EventSink, Subscription

STUBBORN = {"polyvisor.test/guest": "ignore-shutdown"}
PROMPTLY = 1.0  # seconds a cancelled task may take to end


class Subscriptions:
    """Counts a backend's live subscriptions and lets a test await the first one (the start of a wait)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.live = 0
        self.first = asyncio.Event()
        self.ended = threading.Event()
        loop = asyncio.get_running_loop()
        backend = conn.sync.backend
        subscribe = backend.subscribe

        def counting(sink: EventSink) -> Subscription:
            cancel = subscribe(sink)
            self.live += 1
            loop.call_soon_threadsafe(self.first.set)

            def uncounting() -> None:
                cancel()
                self.live -= 1
                self.ended.set()

            return uncounting

        backend.subscribe = counting  # type: ignore[method-assign]  # instrumenting this one connection


async def cancel_promptly(task: asyncio.Task[Any]) -> None:
    task.cancel()
    async with asyncio.timeout(PROMPTLY):
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_cancelling_a_graceful_shutdown_leaves_a_stubborn_guest_running(stubborn_target: Target) -> None:
    """On memory:// the request returns at once and the task is cancelled in its wait for "stopped"; on Hyper-V
    Stop-VM itself waits for the guest, so the task is cancelled while the request is in flight (it runs on in
    its thread until the verb's deadline, and fails there, unseen).
    """
    target = stubborn_target
    async with polyvisor.aio.connect(target.uri, **target.options) as conn:
        vm = await conn.create({"name": target.vm_name(), "cpus": 1, "memory_mib": 128, "labels": STUBBORN})
        try:
            await vm.start()
            requested = asyncio.Event()
            loop = asyncio.get_running_loop()
            backend = conn.sync.backend
            shutdown_request = backend.shutdown

            def announced(uuid: str, mode: ShutdownMode, deadline: Deadline) -> None:
                loop.call_soon_threadsafe(requested.set)
                shutdown_request(uuid, mode, deadline)

            backend.shutdown = announced  # type: ignore[method-assign]  # instrumenting this one connection
            subscriptions = Subscriptions(conn)
            shutdown = asyncio.create_task(vm.shutdown(timeout=15))
            await requested.wait()
            if target.name == "memory":
                await subscriptions.first.wait()  # the request was accepted and the wait for "stopped" began
            await cancel_promptly(shutdown)
            assert await vm.state() is PowerState.RUNNING  # no power-off, no rollback
            if subscriptions.first.is_set():
                await asyncio.to_thread(subscriptions.ended.wait, 10)
            assert subscriptions.live == 0  # the wait's subscription ended with it
        finally:
            await vm.ensure("stopped", force=True)
            await vm.delete()


async def test_cancelling_a_wait_on_libvirt_s_test_driver(libvirt_test: Target) -> None:
    async with polyvisor.aio.connect(libvirt_test.uri) as conn:
        vm = await conn.create({"name": libvirt_test.vm_name(), "cpus": 1, "memory_mib": 128})
        try:
            await vm.start()
            subscriptions = Subscriptions(conn)
            waiting = asyncio.create_task(vm.wait_for("stopped", timeout=60))
            await subscriptions.first.wait()
            await cancel_promptly(waiting)
            assert await vm.state() is PowerState.RUNNING
            await asyncio.to_thread(subscriptions.ended.wait, 10)
            assert subscriptions.live == 0
            # The connection is as good as before: the next verb works and is woken by libvirt's events.
            assert (await vm.shutdown(timeout=30)).state is PowerState.STOPPED
        finally:
            await vm.ensure("stopped", force=True)
            await vm.delete()


async def test_a_request_in_flight_runs_to_its_end_after_the_task_is_cancelled(memory: Target) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    deadlines: list[Deadline] = []

    async with polyvisor.aio.connect(memory.uri) as conn:
        vm = await conn.create({"name": "in-flight", "cpus": 1, "memory_mib": 128})
        backend = conn.sync.backend
        start: Callable[[str, Deadline], None] = backend.start

        def slow_start(uuid: str, deadline: Deadline) -> None:
            deadlines.append(deadline)
            entered.set()
            release.wait(deadline.remaining())  # a primitive honours its deadline
            start(uuid, deadline)
            finished.set()

        backend.start = slow_start  # type: ignore[method-assign]  # instrumenting this one connection
        task = asyncio.create_task(vm.start(timeout=30))
        await asyncio.to_thread(entered.wait, 10)
        await cancel_promptly(task)
        assert await vm.state() is PowerState.STOPPED  # not started yet, and the task is gone
        release.set()
        assert await asyncio.to_thread(finished.wait, 10)
        assert await vm.state() is PowerState.RUNNING  # the request completed: nothing was rolled back
        assert deadlines[0].timeout == 30  # bounded by the verb's own deadline


async def test_cancelling_a_verb_before_its_request_sends_nothing(memory: Target) -> None:
    """With the only thread busy, the verb's first call is still queued: cancelling it means it never runs."""
    hold, held = threading.Event(), threading.Event()

    def occupy() -> None:
        held.set()
        hold.wait(10)

    async with polyvisor.aio.connect(memory.uri, workers=1) as conn:
        vm = await conn.create({"name": "queued", "cpus": 1, "memory_mib": 128})
        busy = asyncio.create_task(conn.to_thread(occupy))
        await asyncio.to_thread(held.wait, 10)
        task = asyncio.create_task(vm.start())
        await asyncio.sleep(0)  # let it queue its first call
        await cancel_promptly(task)
        hold.set()
        await busy
        assert await vm.state() is PowerState.STOPPED


async def test_cancelling_a_wait_on_a_backend_without_events(plugins: polyvisor.Plugins, host_name: str) -> None:
    """The polling fallback (no native events) stops as promptly."""
    async with polyvisor.aio.connect(f"memory:///{host_name}?without=events", plugins=plugins) as conn:
        assert not conn.supports(polyvisor.Feature.EVENTS)
        vm = await conn.create({"name": "polled", "cpus": 1, "memory_mib": 128})
        polling = asyncio.Event()
        waiting = asyncio.create_task(vm.wait_for("running", timeout=60, progress=lambda _note: polling.set()))
        await polling.wait()  # progress is reported on each round of the wait
        await cancel_promptly(waiting)
        assert await vm.state() is PowerState.STOPPED


async def test_a_closed_connection_ends_its_event_streams(memory: Target) -> None:
    conn = await polyvisor.aio.connect(memory.uri)
    stream = conn.events()
    async with stream:
        reader = asyncio.create_task(stream.get())
        await asyncio.sleep(0)
        await conn.close()
        async with asyncio.timeout(PROMPTLY):
            assert await reader is None
