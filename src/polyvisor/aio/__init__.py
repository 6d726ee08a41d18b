"""polyvisor for asyncio: the same connections and VMs, as coroutines.

>>> import asyncio
>>> import polyvisor.aio
>>> async def names() -> list[str]:
...     async with polyvisor.aio.connect("test:///default") as conn:
...         return [info.name for info in await conn.list()]
>>> asyncio.run(names())
['test']

Backends stay synchronous: each connection runs their blocking calls in a small thread pool of its own, while
waits for a VM's state happen on the event loop, woken by the backend's lifecycle events. See the "asyncio" page.
"""

from __future__ import annotations

from polyvisor.aio._connection import DEFAULT_WORKERS, AsyncConnection, Connecting, connect
from polyvisor.aio._console import AsyncConsole
from polyvisor.aio._events import AsyncEventStream
from polyvisor.aio._fleet import AsyncFleet
from polyvisor.aio._vm import AsyncVM

__all__ = [
    "DEFAULT_WORKERS",
    "AsyncConnection",
    "AsyncConsole",
    "AsyncEventStream",
    "AsyncFleet",
    "AsyncVM",
    "Connecting",
    "connect",
]
