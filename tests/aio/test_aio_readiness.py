"""AsyncVM.wait_until_ready: the sync face's semantics, on the event loop (knocks and pauses hold no thread)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

import polyvisor
import polyvisor.aio
from polyvisor.testing.memory import READY_DELAY_LABEL, READY_LABEL


async def _greeter(greeting: bytes) -> asyncio.Server:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(greet, "127.0.0.1", 0)


async def test_wait_until_ready_holds_no_thread_and_can_be_cancelled() -> None:
    async with polyvisor.aio.connect(f"memory:///aio-ready-{uuid.uuid4().hex}", workers=1) as conn:
        late = await conn.create(
            {"name": "late", "nics": [{}], "labels": {READY_DELAY_LABEL: "0.5"}, "memory_mib": 128}
        )
        never = await conn.create({"name": "never", "nics": [{}], "labels": {READY_LABEL: "never"}, "memory_mib": 128})
        await late.start()
        await never.start()
        stuck = asyncio.create_task(never.wait_until_ready(timeout=60))
        # With one worker thread, the late guest's wait still gets its turns: the stuck wait holds no thread.
        ready = await late.wait_until_ready(timeout=30)
        assert ready.sources == ("cloud-init",)
        assert ready.waited >= 0.5
        assert not stuck.done()
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        with pytest.raises(polyvisor.TimeoutError, match=r"asked cloud-init: cloud-init: not ready \(running"):
            await never.wait_until_ready(timeout=0.5)


async def test_the_ssh_source_knocks_from_the_loop() -> None:
    server = await _greeter(b"SSH-2.0-OpenSSH_9.2p1\r\n")
    port = server.sockets[0].getsockname()[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    try:
        async with polyvisor.aio.connect(f"memory:///aio-ready-{uuid.uuid4().hex}", workers=1) as conn:
            vm = await conn.create({"name": "g", "nics": [{}], "labels": {READY_LABEL: "no-agent"}, "memory_mib": 128})
            await vm.start()
            ready = await vm.wait_until_ready(timeout=10, ssh_host="127.0.0.1", ssh_port=port)
            assert ready.answers == (
                polyvisor.ReadyAnswer("ssh", True, f"127.0.0.1:{port} answered SSH-2.0-OpenSSH_9.2p1"),
            )
            with pytest.raises(polyvisor.TimeoutError, match=rf"127\.0\.0\.1:{refused}: connection refused"):
                await vm.wait_until_ready(timeout=0.5, ssh_host="127.0.0.1", ssh_port=refused)
            with pytest.raises(polyvisor.UnsupportedError, match="'cloud-init' cannot answer"):
                await vm.wait_until_ready(sources=["cloud-init"])
    finally:
        server.close()
        await server.wait_closed()
