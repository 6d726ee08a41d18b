"""Events on the event loop: backend subscriptions (fed from any thread) delivered to coroutines.

A backend delivers events into an :class:`~polyvisor.backend.EventSink` from its own thread (libvirt's event-loop
thread, the Hyper-V watcher, the core's poller). The sinks here hand each item to the event loop with
``call_soon_threadsafe``, so no thread blocks while a coroutine waits for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from polyvisor.backend import EventSink, Subscription
from polyvisor.errors import PolyvisorError
from polyvisor.events import RECONNECT_WITHIN, check_reconnect_within
from polyvisor.model import Event

if TYPE_CHECKING:
    from polyvisor.aio._connection import AsyncConnection

__all__ = ["AsyncEventStream", "LoopSink", "Wakeup"]

_CLOSED = object()


class LoopSink(EventSink):
    """An event sink whose items are handed to ``deliver`` on the event loop ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[object], None]) -> None:
        super().__init__()
        self._loop = loop
        self._deliver = deliver

    def emit(self, event: Event) -> None:
        self.put_marker(event)

    def fail(self, error: PolyvisorError) -> None:
        self.put_marker(error)

    def put_marker(self, marker: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            self._loop.call_soon_threadsafe(self._deliver, marker)

    def take(self, timeout: float | None) -> object | None:
        raise TypeError("a LoopSink delivers to its event loop; it cannot be read from a thread")


class Wakeup:
    """An event-loop flag that a backend's events raise: what a wait sleeps on between two status reads."""

    def __init__(self) -> None:
        self._flag = asyncio.Event()
        self.sink = LoopSink(asyncio.get_running_loop(), lambda _item: self._flag.set())

    def clear(self) -> None:
        """Forget the events seen so far (call it before reading the state)."""
        self._flag.clear()

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds``, or as soon as an event arrives."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._flag.wait()


class AsyncEventStream:
    """An async iterator of :class:`~polyvisor.model.Event`; an async context manager that unsubscribes on exit.

    The subscription begins when the stream is entered (``async with``) or first read, so enter it before acting
    on the VMs whose events you want. Iteration ends once the stream (or its connection) is closed; if the
    backend reports that the subscription failed, iteration raises that error. When the link drops it keeps
    trying to reconnect for ``reconnect_within`` seconds; once back it yields an event of kind ``gap``, then events
    re-reading every VM whose state changed (as :class:`polyvisor.EventStream` does); if it cannot, iteration raises
    :class:`~polyvisor.errors.ConnectionLostError`.
    """

    def __init__(self, connection: AsyncConnection, *, reconnect_within: float = RECONNECT_WITHIN) -> None:
        self._within = check_reconnect_within(reconnect_within)
        self._connection = connection
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._opening = asyncio.Lock()
        self._cancel: Subscription | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._cancel else "not yet subscribed"
        return f"<polyvisor.aio.AsyncEventStream on {self._connection.host} {state}>"

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def _open(self) -> None:
        async with self._opening:
            if self._cancel is not None or self._closed:
                return
            sink = LoopSink(asyncio.get_running_loop(), self._queue.put_nowait)
            cancel = await self._connection._subscribe(sink, reconnect_within=self._within)
            if self._was_closed():  # the connection closed while the subscription was being made
                self._connection._release(cancel)
                return
            self._cancel = cancel
            self._connection._event_streams.add(self)

    def _was_closed(self) -> bool:
        return self._closed

    async def get(self, timeout: float | None = None) -> Event | None:
        """Return the next event; None after ``timeout`` seconds without one, or once the stream is closed.

        Raise the backend's error when the subscription failed.
        """
        await self._open()
        if self._closed:
            return None
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # wake every other reader too
            return None
        if isinstance(item, PolyvisorError):
            self._close_now()
            raise item
        assert isinstance(item, Event)
        return item

    async def close(self) -> None:
        """Stop receiving events; readers waiting in other tasks return."""
        self._close_now()

    @property
    def closed(self) -> bool:
        """Whether the stream is closed (by :meth:`close`, its connection, or a failure it raised)."""
        return self._closed

    def _close_now(self) -> None:
        was_closed, self._closed = self._closed, True
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            self._connection._release(cancel)
        self._queue.put_nowait(_CLOSED)
        if not was_closed:
            self._connection._event_stream_ended()
