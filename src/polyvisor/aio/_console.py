"""The asyncio face of a serial console: :class:`polyvisor.Console`'s calls as coroutines.

Each read or write runs in the connection's threads, so a task waiting for console bytes holds one thread for at
most its ``timeout``; the event loop stays free. Cancelling a read leaves the bytes it would have returned in the
stream for the next one.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from polyvisor.console import READ_CHUNK, READ_TIMEOUT, Console

if TYPE_CHECKING:
    from polyvisor.aio._connection import AsyncConnection

__all__ = ["AsyncConsole"]


class AsyncConsole:
    """The serial console of one VM, open; use it in an ``async with`` block. ``sync`` is the Console underneath."""

    def __init__(self, connection: AsyncConnection, sync: Console) -> None:
        self.connection = connection
        self.sync = sync

    def __repr__(self) -> str:
        return repr(self.sync).replace("polyvisor.Console", "polyvisor.aio.AsyncConsole", 1)

    async def __aenter__(self) -> AsyncConsole:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.sync.closed

    @property
    def ended(self) -> bool:
        """Whether the stream ended: the VM stopped or another client took the console."""
        return self.sync.ended

    async def read(self, max_bytes: int = READ_CHUNK, *, timeout: float = READ_TIMEOUT) -> bytes:
        """Return the bytes that arrived (see :meth:`polyvisor.console.Console.read`)."""
        return await self.connection._call(self.sync.read, max_bytes, timeout=timeout)

    async def read_until(self, marker: bytes | str, *, timeout: float = READ_TIMEOUT) -> bytes:
        """Read until ``marker`` arrived (see :meth:`polyvisor.console.Console.read_until`)."""
        return await self.connection._call(self.sync.read_until, marker, timeout=timeout)

    async def write(self, data: bytes | str, *, timeout: float = READ_TIMEOUT) -> None:
        """Send ``data`` to the guest's console (see :meth:`polyvisor.console.Console.write`)."""
        await self.connection._call(self.sync.write, data, timeout=timeout)

    async def close(self) -> None:
        """Release the console; safe to call twice."""
        await self.connection._call(self.sync.close)
