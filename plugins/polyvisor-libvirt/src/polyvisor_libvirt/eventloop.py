"""libvirt's default event loop, registered once per process and run by a daemon thread.

It must be registered before the first connection opens, or that connection never delivers domain events.

Under asyncio (:mod:`polyvisor.aio`) the thread stays, and libvirt-python's ``libvirtaio`` (an event-loop
implementation on an asyncio loop) is not used: libvirt takes one implementation per process, for good (a second
registration is ignored with "Ignoring attempt to replace registered event loop"), and it must run as long as any
connection lives. Bound to one asyncio loop, every connection's events, keepalives and close callbacks, the sync
API's included, would stop when that loop ends (each ``asyncio.run`` makes a new one; later callbacks fail with
"Event loop is closed"). It would not make the libvirt calls themselves asynchronous either. The asyncio face
needs neither: its waits subscribe like the sync ones, and the sink hands each event from this thread to the
waiting coroutine's loop (``call_soon_threadsafe``), so no thread is held while a coroutine waits.
"""

from __future__ import annotations

import logging
import threading

import libvirt

__all__ = ["ensure_event_loop"]

log = logging.getLogger("polyvisor.libvirt")
_lock = threading.Lock()
_started = False


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # keep the loop alive: one failing callback must not stop every connection's events
            log.exception("libvirt event loop iteration failed")


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and start its thread, once per process."""
    global _started
    with _lock:
        if _started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run, name="polyvisor-libvirt-events", daemon=True).start()
        _started = True
