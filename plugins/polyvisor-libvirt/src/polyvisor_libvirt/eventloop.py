"""libvirt's event loop: the one the application registered, else the default one run by a daemon thread.

libvirt takes one event-loop implementation per process, for good (a second registration is ignored with
"Ignoring attempt to replace registered event loop"), and it must be registered before the first connection
opens, or that connection never delivers domain events, keepalives or close callbacks.

Two implementations serve polyvisor:

* **libvirt-python's ``libvirtaio``**, when the application registered it on its own asyncio loop
  (``libvirtaio.virEventRegisterAsyncIOImpl()``) before its first polyvisor connection. libvirt's descriptors
  and timers are then watched by that loop and every event callback runs on it: polyvisor starts no thread.
  The application promises what libvirt needs, that the loop runs for as long as any libvirt connection lives.
* **libvirt's default implementation** otherwise, run by one daemon thread for the life of the process. This is
  the default even under :mod:`polyvisor.aio`: polyvisor cannot register ``libvirtaio`` on the caller's loop by
  itself, since every libvirt connection of the process, the sync API's included, would lose its events when that
  loop ends (each ``asyncio.run`` makes a new one, and later callbacks fail with "Event loop is closed").

Either way the asyncio face holds no thread while a coroutine waits: its sinks hand each event to the waiting
coroutine's loop with ``call_soon_threadsafe``, which also works from that loop's own thread.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading

import libvirt

__all__ = ["EventLoopKind", "ensure_event_loop", "event_loop_kind"]

log = logging.getLogger("polyvisor.libvirt")
_lock = threading.Lock()
_kind: EventLoopKind | None = None


class EventLoopKind(enum.Enum):
    """Which implementation runs libvirt's events in this process."""

    DEFAULT_THREAD = "default-thread"
    """libvirt's default implementation, run by polyvisor's ``polyvisor-libvirt-events`` daemon thread."""
    ASYNCIO = "asyncio"
    """``libvirtaio`` on the asyncio loop the application registered it on."""


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # keep the loop alive: one failing callback must not stop every connection's events
            log.exception("libvirt event loop iteration failed")


def ensure_event_loop() -> EventLoopKind:
    """Make sure an event-loop implementation is registered, once per process; say which one runs."""
    global _kind
    with _lock:
        if _kind is None:
            # An application that registered libvirtaio has imported it; looking it up here, rather than importing
            # it, spares every other process the import of asyncio.
            libvirtaio = sys.modules.get("libvirtaio")
            if libvirtaio is not None and libvirtaio.getCurrentImpl() is not None:
                log.debug("libvirt events run on the application's asyncio loop (libvirtaio)")
                _kind = EventLoopKind.ASYNCIO
            else:
                libvirt.virEventRegisterDefaultImpl()
                threading.Thread(target=_run, name="polyvisor-libvirt-events", daemon=True).start()
                _kind = EventLoopKind.DEFAULT_THREAD
        return _kind


def event_loop_kind() -> EventLoopKind | None:
    """The implementation running libvirt's events, or ``None`` before the first connection registered one."""
    return _kind
