"""libvirt's default event loop, registered once per process and run by a daemon thread.

It must be registered before the first connection opens, or that connection never delivers domain events.
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
