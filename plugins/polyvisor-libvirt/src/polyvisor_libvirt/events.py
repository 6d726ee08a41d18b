"""libvirt domain events: one registration per connection feeds the definition cache and every subscription.

libvirt allows one callback per event id and connection. :class:`Events` holds those registrations (lifecycle
events for subscribers and the cache, metadata and device events for the cache only) and the live subscriptions;
after a reconnect it registers again on the new connection and reports a gap to each subscription.
"""

from __future__ import annotations

import contextlib
import threading

import libvirt

from polyvisor.backend import EventSink, Subscription
from polyvisor.errors import PolyvisorError
from polyvisor.model import Event, EventKind, PowerState
from polyvisor_libvirt.domainxml import Definition

__all__ = ["DefinitionCache", "Events"]

_EVENT_DETAIL = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}

# The state an event implies when it is unambiguous (STOPPED may still be SAVED: the core re-reads the status).
_EVENT_STATES = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: PowerState.SUSPENDED,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: PowerState.STOPPING,
}


class DefinitionCache:
    """Parsed domain XML by UUID, dropped whenever libvirt reports a change to the domain.

    A reader takes a :meth:`ticket` for the domain before reading its XML and hands it to :meth:`put`: a change
    reported while the XML was on its way (the event thread drops the entry meanwhile) makes the ticket stale, and
    the definition read before the change is not kept. Tickets are per domain, so a busy host's events for other
    domains never keep a definition out of the cache.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Definition] = {}
        self._drops: dict[str, int] = {}
        self._clears = 0
        self.enabled = False

    def get(self, uuid: str) -> Definition | None:
        with self._lock:
            return self._items.get(uuid)

    def ticket(self, uuid: str) -> tuple[int, int]:
        with self._lock:
            return self._clears, self._drops.get(uuid, 0)

    def put(self, definition: Definition, ticket: tuple[int, int]) -> None:
        if self.enabled:
            with self._lock:
                if ticket == (self._clears, self._drops.get(definition.uuid, 0)):
                    self._items[definition.uuid] = definition

    def drop(self, uuid: str) -> None:
        with self._lock:
            self._drops[uuid] = self._drops.get(uuid, 0) + 1
            self._items.pop(uuid, None)

    def clear(self) -> None:
        with self._lock:
            self._clears += 1
            self._drops.clear()
            self._items.clear()


class Events:
    """The event registrations on one connection, and the subscriptions they feed."""

    def __init__(self, cache: DefinitionCache) -> None:
        self.cache = cache
        self.available = False
        self._callback_ids: list[int] = []
        self._sinks: set[EventSink] = set()
        self._lock = threading.Lock()

    def register(self, conn: libvirt.virConnect) -> bool:
        """Register the callbacks on ``conn``; return whether the driver delivers events (else nothing is cached)."""

        def drop(_conn: object, dom: libvirt.virDomain, *_rest: object) -> None:
            self.cache.drop(dom.UUIDString())

        try:
            self._callback_ids.append(
                conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
            )
            for event_id in (
                libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
                libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
            ):
                self._callback_ids.append(conn.domainEventRegisterAny(None, event_id, drop, None))
        except libvirt.libvirtError:
            self.deregister(conn)
            self.available = False
            return False
        self.cache.enabled = True
        self.available = True
        return True

    def deregister(self, conn: libvirt.virConnect) -> None:
        """Remove the registrations from ``conn`` (best effort: it may be dead)."""
        for callback_id in self._callback_ids:
            with contextlib.suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(callback_id)
        self._callback_ids.clear()

    def subscribe(self, sink: EventSink) -> Subscription:
        """Deliver lifecycle events into ``sink`` until the returned callable runs."""
        with self._lock:
            self._sinks.add(sink)

        def cancel() -> None:
            with self._lock:
                self._sinks.discard(sink)

        return cancel

    @property
    def watched(self) -> bool:
        """Whether any subscription is live."""
        with self._lock:
            return bool(self._sinks)

    def dropped(self) -> None:
        """Tell every subscription that the link is down: events may be missed from now on."""
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink.dropped()

    def gap(self, detail: str) -> None:
        """Tell every subscription that events may have been missed."""
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink.gap(detail)

    def fail(self, error: PolyvisorError) -> None:
        """End every subscription with ``error``."""
        with self._lock:
            sinks, self._sinks = list(self._sinks), set()
        for sink in sinks:
            sink.fail(error)

    def _on_lifecycle(self, _conn: object, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
        uuid, name = dom.UUIDString(), dom.name()
        self.cache.drop(uuid)
        kind = {
            libvirt.VIR_DOMAIN_EVENT_DEFINED: EventKind.DEFINED,
            libvirt.VIR_DOMAIN_EVENT_UNDEFINED: EventKind.UNDEFINED,
        }.get(event, EventKind.STATE)
        state = _EVENT_STATES.get(event) if kind is EventKind.STATE else None
        text = _EVENT_DETAIL.get(event, str(event))
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink.emit(Event(kind, uuid, name, state, text))
