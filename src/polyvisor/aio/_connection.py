"""The asyncio face of a connection: the same calls as :class:`polyvisor.Connection`, as coroutines.

Nothing of a backend is reimplemented. Each blocking call runs in the connection's own bounded thread pool
(``workers`` threads); opening and closing run in a thread of their own, so neither queues behind a busy pool.
"""

from __future__ import annotations

import asyncio
import builtins  # the name ``list`` is the listing method inside the class
import functools
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from polyvisor.aio._events import AsyncEventStream
from polyvisor.aio._threads import in_executor, in_own_thread
from polyvisor.aio._vm import AsyncVM
from polyvisor.backend import Backend, Clock, Deadline, EventSink, Subscription, validate_timeout
from polyvisor.calls import change, read
from polyvisor.connect import connect as connect_sync
from polyvisor.connection import Connection
from polyvisor.errors import ConnectionError, ValidationError
from polyvisor.events import RECONNECT_WITHIN, ResumingSubscription, subscribe
from polyvisor.metrics.counters import VMStats
from polyvisor.model import (
    Capabilities,
    Feature,
    HostDevice,
    HostInfo,
    NetworkInfo,
    NetworkMode,
    VMInfo,
    VMSpec,
)
from polyvisor.plugins import Plugins
from polyvisor.storage import Progress, StoragePool, TransferProgress, Volume, VolumeFormat
from polyvisor.storage_calls import TRANSFER_TIMEOUT
from polyvisor.uri import URI
from polyvisor.verbs.deadlines import DEFAULT_TIMEOUT

__all__ = ["DEFAULT_WORKERS", "AsyncConnection", "Connecting", "connect"]

log = logging.getLogger("polyvisor")

DEFAULT_WORKERS = 4
"""Threads a connection runs blocking calls in, unless ``connect(workers=...)`` says otherwise."""

_T = TypeVar("_T")


def connect(
    uri: str | URI | None = None,
    *,
    plugins: Plugins | None = None,
    workers: int = DEFAULT_WORKERS,
    **credentials: Any,
) -> Connecting:
    """Open a connection to a hypervisor without blocking the event loop.

    Await it (``conn = await polyvisor.aio.connect(uri)``) or enter it (``async with polyvisor.aio.connect(uri)
    as conn:``, which closes the connection on exit). ``uri``, ``plugins`` and the credentials are those of
    :func:`polyvisor.connect`; ``workers`` bounds the threads the connection runs blocking calls in.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(f"must be a whole number >= 1, got {workers!r}", field="workers")
    return Connecting(lambda: connect_sync(uri, plugins=plugins, **credentials), uri, workers)


class Connecting:
    """A connection being opened: await it for the :class:`AsyncConnection`, or use it with ``async with``."""

    def __init__(self, opener: Callable[[], Connection], uri: str | URI | None, workers: int) -> None:
        self._opener = opener  # holds the credentials; never shown
        self._uri = uri
        self._workers = workers
        self._connection: AsyncConnection | None = None

    def __repr__(self) -> str:
        shown = self._uri.render() if isinstance(self._uri, URI) else "a URI" if self._uri else "the default URI"
        return f"<polyvisor.aio.Connecting to {shown}>"

    async def _open(self) -> AsyncConnection:
        # In a thread of its own: a host that never answers must not hold a pool thread, or the interpreter's exit.
        sync = await in_own_thread(self._opener, "polyvisor-aio-connect", abandoned=lambda conn: conn.close())
        return AsyncConnection(sync, workers=self._workers)

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


class AsyncConnection:
    """An open connection, for asyncio: :class:`polyvisor.Connection`'s calls as coroutines.

    Use it as an async context manager, or await :meth:`close`. ``sync`` is the connection underneath.
    """

    def __init__(self, sync: Connection, *, workers: int = DEFAULT_WORKERS) -> None:
        self.sync = sync
        self.uri = sync.uri
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"polyvisor-aio-{sync.host}")
        self._event_streams: weakref.WeakSet[AsyncEventStream] = weakref.WeakSet()
        self._closing = False
        self._retired = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<polyvisor.aio.AsyncConnection {self.uri.render()} {state}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- running blocking calls -----------------------------------------------------------------------------------
    async def to_thread(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Return ``call(*args, **kwargs)``, run in this connection's thread pool (for backend-specific extras).

        Cancelling the awaiting task returns at once; the call itself runs to its end in the background.
        """
        return await self._call(call, *args, **kwargs)

    def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> Awaitable[_T]:
        if self._closing:
            raise ConnectionError(
                "the connection is closed; open a new one with polyvisor.aio.connect()", host=self.host
            )
        return in_executor(self._executor, call, *args, **kwargs)

    async def _subscribe(
        self, sink: EventSink, *, native: bool = False, reconnect_within: float | None = None
    ) -> Subscription:
        """Subscribe ``sink`` to lifecycle events: the backend's own (``native``), or else through the poller;
        with ``reconnect_within``, carried across outages as a stream is
        (:class:`~polyvisor.events.ResumingSubscription`).

        A subscription made for a task that was cancelled meanwhile is ended as soon as it exists.
        """
        if native:
            start: Callable[[EventSink], Subscription] = self.backend.subscribe
        elif reconnect_within is not None:
            within = reconnect_within

            def start(sink: EventSink) -> Subscription:
                return ResumingSubscription(self.sync, sink, within).start()

        else:
            start = functools.partial(subscribe, self.sync)
        if self._closing:
            raise ConnectionError(
                "the connection is closed; open a new one with polyvisor.aio.connect()", host=self.host
            )
        return await in_executor(self._executor, start, sink, abandoned=self._release)

    def _release(self, cancel: Subscription) -> None:
        """End a subscription without waiting for it (a poller's thread takes a moment to stop)."""
        threading.Thread(target=cancel, name="polyvisor-aio-unsubscribe", daemon=True).start()

    # -- the connection ---------------------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend object (for backend-specific extras, through :meth:`to_thread`); raises once closed."""
        return self.sync.backend

    @property
    def host(self) -> str:
        """The host name as messages show it."""
        return self.sync.host

    @property
    def clock(self) -> Clock:
        """The clock the deadlines and waits of this connection's calls read (the sync connection's)."""
        return self.sync.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.sync.clock = clock

    @property
    def closed(self) -> bool:
        """Return whether :meth:`close` was called."""
        return self._closing or self.sync.closed

    @property
    def ephemeral(self) -> bool:
        """Whether the hypervisor keeps its VMs only while connections to it are open (libvirt's test driver,
        ``memory://``), so that what a process does through it is gone once the process exits."""
        return self.sync.ephemeral

    async def close(self) -> None:
        """Close the connection and every event stream still open on it; calling it again does nothing.

        Calls still running in the pool (those whose tasks were cancelled) end on their own, each bounded by its
        verb's deadline.
        """
        if self._closing:
            return
        self._closing = True
        for stream in list(self._event_streams):
            stream._close_now()
        self._executor.shutdown(wait=False, cancel_futures=True)
        # Not in the pool: it may be busy with calls whose tasks were cancelled.
        await in_own_thread(self.sync.close, "polyvisor-aio-close")

    def retire(self) -> None:
        """Close the connection once no event stream is open on it: at once if none is, else when the last closes.

        The twin of :meth:`polyvisor.Connection.retire` (a plain method: it waits for nothing).
        """
        self._retired = True
        self._event_stream_ended()

    def _event_stream_ended(self) -> None:
        if self._retired and all(stream.closed for stream in list(self._event_streams)):
            self._abandon()

    def _abandon(self) -> None:
        """Close without waiting (a fleet drops a connection whose host hung): nothing here blocks the loop."""
        if self._closing:
            return
        self._closing = True
        for stream in list(self._event_streams):
            stream._close_now()
        self._executor.shutdown(wait=False, cancel_futures=True)
        threading.Thread(target=self.sync.close, name="polyvisor-aio-close", daemon=True).start()

    async def _read(self, call: Callable[[Backend], _T], deadline: Deadline | None = None) -> _T:
        """Run a read-only backend call in a thread, once more if the connection dropped (the backend reconnects)."""
        return await self._call(read, self.sync, call, deadline)

    async def _change(
        self, call: Callable[[Backend], _T], doing: str, vm: str | None = None, deadline: Deadline | None = None
    ) -> _T:
        """Run a mutating backend call in a thread; a dropped connection makes its outcome unknown, and says so."""
        return await self._call(change, self.sync, call, doing, vm, deadline)

    def _timed(self, call: Callable[..., _T], timeout: float, *args: Any, **kwargs: Any) -> Awaitable[_T]:
        """Run a sync call taking ``timeout=`` in the pool, its timeout counted from now: time spent waiting for a
        free thread is part of it."""
        validate_timeout(timeout)
        deadline = Deadline(timeout, self.clock)
        return self._call(lambda: call(*args, timeout=deadline.remaining(), **kwargs))

    # -- capabilities and host --------------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """The features this connection supports (known since connect: no round trip)."""
        return self.sync.capabilities

    def supports(self, feature: Feature) -> bool:
        """Return whether the connection declares ``feature`` (no round trip, so not a coroutine)."""
        return self.sync.supports(feature)

    async def host_info(self, *, timeout: float = DEFAULT_TIMEOUT) -> HostInfo:
        """Return facts about the host."""
        return await self._timed(self.sync.host_info, timeout)

    async def host_devices(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[HostDevice]:
        """Return the host's PCI and USB devices a VM can be given (see :meth:`polyvisor.Connection.host_devices`)."""
        return await self._timed(self.sync.host_devices, timeout)

    async def networks(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[NetworkInfo]:
        """Return the networks (libvirt) or virtual switches (Hyper-V) VMs can attach to."""
        return await self._timed(self.sync.networks, timeout)

    async def create_network(
        self,
        name: str,
        mode: NetworkMode | str = NetworkMode.ISOLATED,
        *,
        subnet: str | None = None,
        adapter: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> NetworkInfo:
        """Create a network or virtual switch (see :meth:`polyvisor.Connection.create_network`)."""
        return await self._timed(self.sync.create_network, timeout, name, mode, subnet=subnet, adapter=adapter)

    async def delete_network(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a network or switch; one a VM's NIC is on raises InUseError naming the VMs."""
        await self._timed(self.sync.delete_network, timeout, name)

    # -- inventory -----------------------------------------------------------------------------------------------
    async def list(self, *, details: bool = False, timeout: float = DEFAULT_TIMEOUT) -> list[VMInfo]:
        """Return every VM as plain values (one bulk query; ``details`` costs a call per VM on libvirt)."""
        return await self._timed(self.sync.list, timeout, details=details)

    async def stats(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[VMStats]:
        """Return one sample of every VM's counters, in one bulk query (see :mod:`polyvisor.metrics`)."""
        return await self._timed(self.sync.stats, timeout)

    async def vm(self, ref: str | VMInfo, *, timeout: float = DEFAULT_TIMEOUT) -> AsyncVM:
        """Return a handle on the VM with this UUID or name, or from a listing entry (no round trip).

        Raise :class:`~polyvisor.errors.NotFoundError` if there is none.
        """
        if isinstance(ref, VMInfo):
            return AsyncVM(self, self.sync.vm(ref))
        return AsyncVM(self, await self._timed(self.sync.vm, timeout, ref))

    async def exists(self, ref: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Return whether a VM with this UUID or name exists."""
        return await self._timed(self.sync.exists, timeout, ref)

    async def create(self, spec: VMSpec | Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> AsyncVM:
        """Create (define) a stopped VM from a spec; a failure leaves nothing behind."""
        return AsyncVM(self, await self._timed(self.sync.create, timeout, spec))

    # -- storage ---------------------------------------------------------------------------------------------------
    async def pools(self, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[StoragePool]:
        """Return the host's storage pools as values."""
        return await self._timed(self.sync.pools, timeout)

    async def volumes(self, pool: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> builtins.list[Volume]:
        """Return the volumes of a pool (the default pool without ``pool``)."""
        return await self._timed(self.sync.volumes, timeout, pool)

    def _on_loop(self, progress: Progress | None) -> Progress | None:
        """A progress callback that runs on the event loop, not in the worker thread doing the transfer."""
        if progress is None:
            return None
        loop = asyncio.get_running_loop()

        def on_loop(report: TransferProgress) -> None:
            loop.call_soon_threadsafe(progress, report)

        return on_loop

    async def upload_image(
        self,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> Volume:
        """Upload a local image into a pool (see :meth:`polyvisor.Connection.upload_image`); ``progress`` is called
        on the event loop."""
        sink = self._on_loop(progress)
        return await self._timed(self.sync.upload_image, timeout, local_path, pool=pool, name=name, progress=sink)

    async def download_image(
        self,
        name: str,
        local_path: str | os.PathLike[str],
        *,
        pool: str | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        timeout: float = TRANSFER_TIMEOUT,
    ) -> Path:
        """Download a volume into a local file (see :meth:`polyvisor.Connection.download_image`)."""
        sink = self._on_loop(progress)
        return await self._timed(
            self.sync.download_image, timeout, name, local_path, pool=pool, overwrite=overwrite, progress=sink
        )

    async def create_pool(self, name: str, *, path: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> StoragePool:
        """Create a directory pool (libvirt) or an image folder (Hyper-V)."""
        return await self._timed(self.sync.create_pool, timeout, name, path=path)

    async def delete_pool(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete an empty pool and its directory."""
        await self._timed(self.sync.delete_pool, timeout, name)

    async def create_volume(
        self,
        name: str,
        size_mib: int,
        *,
        pool: str | None = None,
        format: VolumeFormat | str = VolumeFormat.QCOW2,  # noqa: A002  # as the sync face names it
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Volume:
        """Create an empty volume of ``size_mib`` MiB."""
        return await self._timed(self.sync.create_volume, timeout, name, size_mib, pool=pool, format=format)

    async def resize_volume(
        self, name: str, size_mib: int, *, pool: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Volume:
        """Grow a volume to ``size_mib`` MiB."""
        return await self._timed(self.sync.resize_volume, timeout, name, size_mib, pool=pool)

    async def delete_volume(self, name: str, *, pool: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Delete a volume; one a VM uses raises InUseError naming the VM."""
        await self._timed(self.sync.delete_volume, timeout, name, pool=pool)

    # -- events ----------------------------------------------------------------------------------------------------
    def events(self, *, reconnect_within: float = RECONNECT_WITHIN) -> AsyncEventStream:
        """Return a stream of lifecycle events: ``async for event in conn.events()``, or enter it first.

        The twin of :meth:`polyvisor.Connection.watch`, with the same reconnect window, ``gap`` event and re-read
        after an outage. Closing the connection closes the stream too.
        """
        return AsyncEventStream(self, reconnect_within=reconnect_within)
