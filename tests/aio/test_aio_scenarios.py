"""The sync API's scenarios through polyvisor.aio, on memory://, libvirt's test:///default and the loopback
Hyper-V host: lifecycle verbs, ensure, waits, events, labels, snapshots, errors, and waits that hold no thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aio_support import Target

import polyvisor
import polyvisor.aio
from polyvisor import EventKind, Feature, PowerState
from polyvisor.aio import AsyncConnection, AsyncVM


@asynccontextmanager
async def fresh_vm(target: Target, conn: AsyncConnection, **labels: str) -> AsyncIterator[AsyncVM]:
    """A new stopped VM, powered off and deleted afterwards whatever the test did to it."""
    spec = {"name": target.vm_name(), "cpus": 1, "memory_mib": 128, "labels": labels}
    vm = await conn.create(spec)
    try:
        yield vm
    finally:
        if await conn.exists(vm.uuid):
            await vm.ensure("stopped", force=True, timeout=30)
            await vm.delete(force=True)


async def test_a_vm_walks_through_its_life(target: Target) -> None:
    async with polyvisor.aio.connect(target.uri, **target.options) as conn:
        assert (await conn.host_info()).hypervisor
        assert isinstance(await conn.networks(), list)
        async with fresh_vm(target, conn, team="infra") as vm:
            assert await vm.state() is PowerState.STOPPED
            assert (await vm.start()).state is PowerState.RUNNING
            assert (await vm.pause()).state is PowerState.PAUSED
            assert (await vm.resume()).state is PowerState.RUNNING
            assert (await vm.reset()).state is PowerState.RUNNING
            assert (await vm.reboot()).state is PowerState.RUNNING
            await vm.snapshot("clean", memory=True)  # every backend here keeps memory
            assert [snap.name for snap in await vm.snapshots()] == ["clean"]
            assert (await vm.save()).state is PowerState.SAVED
            assert (await vm.start()).state is PowerState.RUNNING  # memory restored
            assert (await vm.shutdown(timeout=60)).state is PowerState.STOPPED
            assert (await vm.revert("clean")).state is PowerState.RUNNING
            await vm.delete_snapshot("clean")
            assert not await vm.snapshots()
            assert (await vm.stop()).state is PowerState.STOPPED
            assert (await vm.start()).state is PowerState.RUNNING
            assert (await vm.start()).state is PowerState.RUNNING  # idempotent, as in the sync API
            assert dict(await vm.labels()) == {"team": "infra"}
            assert dict(await vm.update_labels({"tier": "web"}, remove="team")) == {"tier": "web"}
            assert dict(await vm.set_labels({"a": "1"})) == {"a": "1"}
            assert (await vm.info()).name == await vm.name() == vm.seen_name
            assert [info.uuid for info in await conn.list() if info.uuid == vm.uuid] == [vm.uuid]
            assert await conn.vm(vm.seen_name) == vm
            assert (await vm.ensure("stopped", force=True)).state is PowerState.STOPPED
            await vm.delete()
            assert not await conn.exists(vm.uuid)
            await vm.delete()  # already gone: nothing to do


async def test_ensure_composes_the_verbs_of_the_sync_api(target: Target) -> None:
    steps: list[str] = []
    async with polyvisor.aio.connect(target.uri, **target.options) as conn, fresh_vm(target, conn) as vm:
        assert (await vm.ensure("saved", progress=steps.append)).state is PowerState.SAVED
        assert steps == ["start (stopped -> saved)", "save (running -> saved)"]
        steps.clear()
        assert (await vm.ensure("stopped", progress=steps.append)).state is PowerState.STOPPED
        assert steps == ["start (saved -> stopped)", "shutdown (running -> stopped)"]  # lossless without force
        assert (await vm.ensure("paused")).state is PowerState.PAUSED
        assert (await vm.ensure("stopped", force=True)).state is PowerState.STOPPED
        with pytest.raises(polyvisor.ValidationError, match="cannot ensure"):
            await vm.ensure("starting")


async def test_errors_are_the_sync_api_s(target: Target) -> None:
    async with polyvisor.aio.connect(target.uri, **target.options) as conn:
        with pytest.raises(polyvisor.NotFoundError):
            await conn.vm("aio-no-such-vm")
        assert not await conn.exists("aio-no-such-vm")
        async with fresh_vm(target, conn) as vm:
            with pytest.raises(polyvisor.InvalidStateError, match="cannot pause"):
                await vm.pause()
            with pytest.raises(polyvisor.AlreadyExistsError):
                await conn.create({"name": vm.seen_name, "cpus": 1, "memory_mib": 128})
            with pytest.raises(polyvisor.ValidationError):
                await vm.wait_for("sideways")
            with pytest.raises(polyvisor.TimeoutError, match="to become running"):
                await vm.wait_for("running", timeout=0.2)
    with pytest.raises(polyvisor.ConnectionError, match="closed"):
        await conn.list()


async def test_events_arrive_on_the_event_loop(target: Target) -> None:
    async with polyvisor.aio.connect(target.uri, **target.options) as conn, fresh_vm(target, conn) as vm:
        async with conn.events() as stream:
            await vm.start()
            async for event in stream:
                if event.uuid == vm.uuid and event.state is PowerState.RUNNING:
                    break
            assert event.kind in (EventKind.STATE, EventKind.DEFINED)
        assert await stream.get() is None  # closed on exit


async def test_a_wait_is_woken_by_another_client_s_change(target: Target) -> None:
    async with (
        polyvisor.aio.connect(target.uri, **target.options) as conn,
        polyvisor.aio.connect(target.uri, **target.options) as other,
        fresh_vm(target, conn) as vm,
    ):
        waiting = asyncio.create_task(vm.wait_for("running", timeout=60))
        await asyncio.sleep(0)  # let the wait begin before the change
        await (await other.vm(vm.uuid)).start()
        assert (await waiting).state is PowerState.RUNNING


async def test_waits_hold_no_thread(memory: Target) -> None:
    """Ten waits on a connection with one thread: were a wait to hold it, the start below could never run."""
    async with polyvisor.aio.connect(memory.uri, workers=1) as conn, fresh_vm(memory, conn) as vm:
        waits = [asyncio.create_task(vm.wait_for("running", timeout=30)) for _ in range(10)]
        await asyncio.sleep(0)
        await vm.start()
        statuses = await asyncio.gather(*waits)
        assert {status.state for status in statuses} == {PowerState.RUNNING}


async def test_blocking_calls_run_in_the_connection_s_bounded_pool(memory: Target) -> None:
    seen: set[str] = set()

    def where() -> None:
        seen.add(threading.current_thread().name)

    async with polyvisor.aio.connect(memory.uri, workers=2) as conn:
        await asyncio.gather(*(conn.to_thread(where) for _ in range(20)))
        assert 1 <= len(seen) <= 2
        assert all(name.startswith("polyvisor-aio-") for name in seen)
        assert threading.current_thread().name not in seen


async def test_a_connection_is_awaitable_and_its_repr_hides_the_password(target: Target) -> None:
    connecting = polyvisor.aio.connect(target.uri, **target.options)
    for secret in target.options.values():
        assert secret not in repr(connecting)
    conn = await connecting
    try:
        assert repr(conn).startswith("<polyvisor.aio.AsyncConnection")
        for secret in target.options.values():
            assert secret not in repr(conn)
        vm = await conn.vm((await conn.list())[0]) if await conn.list() else None
        if vm is not None:
            assert vm.uuid in repr(vm)
    finally:
        await conn.close()
    assert conn.closed
    await conn.close()  # twice does nothing


async def test_capabilities_and_unsupported_calls_match_the_sync_api(target: Target) -> None:
    async with polyvisor.aio.connect(target.uri, **target.options) as conn, fresh_vm(target, conn) as vm:
        assert conn.capabilities == conn.sync.capabilities
        caps = await vm.capabilities()
        assert conn.supports(Feature.CREATE)
        if not caps.supports(Feature.CONSOLE):
            with pytest.raises(polyvisor.UnsupportedError):
                await vm.console_output()
        if caps.supports(Feature.NIC_ATTACH):
            networks = await conn.networks()
            mac = await vm.attach_nic({"network": networks[0].name}, live=False)
            await vm.detach_nic(mac, live=False)
        if caps.supports(Feature.GUEST_ADDRESSES):
            await vm.start()
            assert isinstance(await vm.addresses(), list)


async def test_disks_attach_and_detach(target: Target) -> None:
    async with polyvisor.aio.connect(target.uri, **target.options) as conn, fresh_vm(target, conn) as vm:
        disk = await vm.attach_disk({"size_mib": 16}, live=False)
        await vm.detach_disk(disk, live=False)
        with pytest.raises(polyvisor.NotFoundError):
            await vm.detach_disk(disk, live=False)


def test_workers_must_be_a_positive_whole_number() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(polyvisor.ValidationError, match="workers"):
            polyvisor.aio.connect("memory:///aio", workers=bad)  # type: ignore[arg-type]


async def test_wait_for_address_holds_no_thread_and_can_be_cancelled() -> None:
    """A guest whose address comes late is waited for on the loop; a guest that never reports can be cancelled."""
    from polyvisor.testing.memory import ADDRESS_DELAY_LABEL, ADDRESS_LABEL

    async with polyvisor.aio.connect("memory:///aio-address", workers=1) as conn:
        late = await conn.create(
            {"name": "late", "nics": [{}], "labels": {ADDRESS_DELAY_LABEL: "0.5"}, "memory_mib": 128}
        )
        never = await conn.create({"name": "never", "nics": [{}], "labels": {ADDRESS_LABEL: "none"}, "memory_mib": 128})
        await late.start()
        await never.start()
        stuck = asyncio.create_task(never.wait_for_address(timeout=60))
        # With one worker thread, the late guest's wait still gets its turns: the stuck wait holds no thread.
        address = await late.wait_for_address(timeout=30)
        assert address.source == "agent"
        assert not stuck.done()
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        with pytest.raises(polyvisor.TimeoutError, match="agent"):
            await never.wait_for_address(timeout=0.5)
        for vm in (late, never):
            await vm.stop()
            await vm.delete()
