"""A domain's serial console as a byte stream: ``virDomainOpenConsole`` on a non-blocking ``virStream``.

The stream's bytes arrive through libvirt's event loop (:mod:`.eventloop`: polyvisor's event thread, or the
application's asyncio loop with ``libvirtaio``): a callback registered with ``eventAddCallback`` drains what is
readable into a buffer that :meth:`StreamConsole.read` waits on, and wakes a writer that found the stream full.
:meth:`StreamConsole.close` removes the callback and aborts the stream, so neither libvirt nor Python keeps a
reference to it (a stream whose callback stays registered is never freed: the leak of libvirt-python#8); the
tests count this process's descriptors across many open/close cycles.

``VIR_DOMAIN_CONSOLE_SAFE`` makes libvirt refuse a console another client holds ("Active console session exists"),
reported as :class:`~polyvisor.errors.InUseError`; ``force`` adds ``VIR_DOMAIN_CONSOLE_FORCE``, which ends the
other client's stream. The domain stopping ends the stream too (a hang-up, or end of file).
"""

from __future__ import annotations

import contextlib
import logging
import threading

import libvirt

from polyvisor.backend import ConsoleChannel, Deadline
from polyvisor.errors import ConnectionLostError, InUseError, TimeoutError
from polyvisor_libvirt.client import LibvirtClient

__all__ = ["Consoles", "StreamConsole"]

log = logging.getLogger("polyvisor.libvirt")

_CHUNK = 65536
_BUFFER_MOST = 4 * 1024 * 1024  # a console nobody reads keeps its newest 4 MiB; older bytes are dropped
_READ_EVENTS = libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP


class Consoles:
    """Serial consoles of domains, over one client."""

    def __init__(self, client: LibvirtClient) -> None:
        self._client = client

    def open_console(self, uuid: str, *, force: bool, deadline: Deadline) -> StreamConsole:
        """Open the domain's first console (its serial port) on a new stream."""
        dom = self._client.domain(uuid)
        conn = self._client.live()
        flags = libvirt.VIR_DOMAIN_CONSOLE_SAFE | (libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
        doing = "opening the serial console"
        with self._client.errors(doing, host=self._client.host, vm=uuid):
            stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            try:
                dom.openConsole(None, stream, flags)
            except libvirt.libvirtError as error:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                if "Active console session" in (error.get_error_message() or ""):
                    raise InUseError(
                        "another client has this VM's serial console open (virsh console?); close it, or pass "
                        "force=True to take it over",
                        users=(uuid,),
                        host=self._client.host,
                    ) from error
                raise
            return StreamConsole(stream, host=self._client.host, vm=uuid)


class StreamConsole(ConsoleChannel):
    """One open console stream."""

    def __init__(self, stream: libvirt.virStream, *, host: str, vm: str) -> None:
        self._stream: libvirt.virStream | None = stream
        self._host = host
        self._vm = vm
        self._changed = threading.Condition()
        self._pending = bytearray()
        self._ended = False
        self._writable = False
        self._watching_writes = False
        self._watched: libvirt.virStream | None = stream
        stream.eventAddCallback(_READ_EVENTS, _on_event, self)

    # -- the event loop's side --------------------------------------------------------------------------------
    def on_event(self, stream: libvirt.virStream, events: int) -> None:
        """Drain what is readable; note a hang-up, an error or room to write (runs on libvirt's event loop)."""
        ended = bool(events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP))
        received = bytearray()
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while len(received) < _BUFFER_MOST:
                try:
                    chunk = stream.recv(_CHUNK)
                except libvirt.libvirtError as error:
                    log.debug("console stream of %s failed: %s", self._vm, error)
                    ended = True
                    break
                if chunk == -2:  # nothing more for now
                    break
                if not isinstance(chunk, bytes) or not chunk:  # end of file: the domain stopped
                    ended = True
                    break
                received += chunk
        with self._changed:
            if received:
                self._pending += received
                del self._pending[:-_BUFFER_MOST]
            if events & libvirt.VIR_STREAM_EVENT_WRITABLE:
                self._writable = True
            self._ended = self._ended or ended
            self._changed.notify_all()
        if ended:
            self._unwatch()

    # -- the caller's side ------------------------------------------------------------------------------------
    def read(self, max_bytes: int, timeout: float) -> bytes | None:
        with self._changed:
            self._changed.wait_for(lambda: self._pending or self._ended, timeout)
            if self._pending:
                out = bytes(self._pending[:max_bytes])
                del self._pending[:max_bytes]
                return out
            return b"" if self._ended else None

    def write(self, data: bytes, timeout: float) -> None:
        deadline = Deadline(timeout)
        view = memoryview(data)
        while view:
            with self._changed:
                if self._ended or self._stream is None:
                    raise ConnectionLostError(
                        "the console stream ended (the VM stopped, or another client took the console); open a new one",
                        host=self._host,
                        vm=self._vm,
                    )
                stream = self._stream
                try:
                    sent = stream.send(bytes(view[:_CHUNK]))
                except libvirt.libvirtError as error:
                    self._ended = True
                    raise ConnectionLostError(
                        f"the console stream failed: {error.get_error_message()}", host=self._host, vm=self._vm
                    ) from error
                if sent > 0:
                    view = view[sent:]
                    continue
                # Full (-2): wait for libvirt to say there is room again.
                self._writable = False
                self._watch_writes(stream, True)
                self._changed.wait_for(lambda: self._writable or self._ended, deadline.remaining())
                self._watch_writes(stream, False)
                if not self._writable and not self._ended:
                    raise TimeoutError(f"the console took no bytes within {timeout:g}s", host=self._host, vm=self._vm)

    def close(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()
            stream, self._stream = self._stream, None
        self._unwatch()
        if stream is not None:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()  # then nothing holds the stream: Python frees it, and libvirt with it

    def _watch_writes(self, stream: libvirt.virStream, on: bool) -> None:
        if on is self._watching_writes:
            return
        self._watching_writes = on
        with contextlib.suppress(libvirt.libvirtError):
            stream.eventUpdateCallback(_READ_EVENTS | (libvirt.VIR_STREAM_EVENT_WRITABLE if on else 0))

    def _unwatch(self) -> None:
        """Remove the event callback, once: libvirt holds a reference to the stream until then."""
        with self._changed:
            stream, self._watched = self._watched, None
        if stream is not None:
            with contextlib.suppress(libvirt.libvirtError):
                stream.eventRemoveCallback()


def _on_event(stream: libvirt.virStream, events: int, console: StreamConsole) -> None:
    console.on_event(stream, events)
