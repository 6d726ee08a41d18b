"""Native VM events: one long-running watcher pipeline per connection feeds every subscription.

The watcher is the fixed script ``scripts/watch.ps1``: a loop on the host that lists the VMs (``Get-VM``: Id, Name,
State) every 500 ms and writes one JSON line per change. It runs on a session of its own (a second runspace pool,
or a second WinRM shell), so verbs on the connection's session never queue behind it; over PSRP its output objects
arrive while it runs (``begin_invoke``/``poll_invoke``), over the WinRM shell powershell.exe writes each line to
stdout and the shell's Receive returns it.

Why a loop in the pipeline and not CIM indications: a ``__InstanceModificationEvent WITHIN n`` query on
``Msvm_ComputerSystem`` is itself polled by WMI every ``n`` seconds (Microsoft, "WITHIN Clause"), so it is no
faster, and it needs an event subscriber plus ``Wait-Event`` in the remote session; the loop needs only Get-VM,
which every other part of the backend already relies on, and the loopback host models it faithfully.

Subscriptions share the watcher. The first one starts it and returns once the watcher has its baseline (the first
listing), so a change made after ``subscribe()`` returns is reported; a watcher that cannot start ends the
subscription with the error (its stream raises it) rather than raising from ``subscribe()``, because the core also
subscribes while a verb waits, and the verb must not fail for it. When the last subscription is cancelled the
watcher keeps running for :data:`LINGER` seconds (the core subscribes for every wait, verb after verb) and is then
stopped on the host (PSRP Stop / WinRS Terminate) and its session closed; closing the connection stops it at once.

When the watcher's session drops (host restart, shell or pool deleted, connection reset), it is started again on a
new session for up to :data:`RECOVER_WITHIN` seconds: once it runs again every subscription gets a gap; if it
cannot, every subscription fails with ConnectionLostError.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Protocol

from polyvisor.backend import EventSink, Subscription
from polyvisor.errors import ConnectionError, ConnectionLostError, PolyvisorError
from polyvisor.model import Event, EventKind, normalize_uuid
from polyvisor_hyperv.errors import error_from_record, error_from_transport
from polyvisor_hyperv.options import ConnectionOptions
from polyvisor_hyperv.states import status_from_vmstate
from polyvisor_hyperv.transport import ScriptEnded

__all__ = ["LINGER", "RECOVER_WITHIN", "Events", "watch_script"]

log = logging.getLogger(__name__)

LINGER = 2.0
"""Seconds the watcher keeps running after its last subscription is cancelled."""
RECOVER_WITHIN = 1.0
"""Seconds after a dropped watcher session within which it must run again, else subscriptions fail."""
_RETRY = 0.1
_KINDS = {"defined": EventKind.DEFINED, "state": EventKind.STATE, "undefined": EventKind.UNDEFINED}


class StreamingTransport(Protocol):
    """What the watcher needs from a transport: ``stream`` (PSRP and WinRM shell transports have it)."""

    def stream(self, script: str, on_line: Callable[[str], None], stop: threading.Event) -> None: ...

    def close(self) -> None: ...


@cache
def watch_script(to_console: bool) -> str:
    """The watcher script: a fixed first line choosing where lines go, then the fixed ``watch.ps1``."""
    text = resources.files("polyvisor_hyperv").joinpath("scripts/watch.ps1").read_text(encoding="utf-8")
    return ("$toConsole = $true\n" if to_console else "$toConsole = $false\n") + text


def _nothing() -> None:
    """Cancelling a subscription that already ended."""


class _Run:
    """One incarnation of the watcher thread (a new one starts after a failure or a linger ran out)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: PolyvisorError | None = None
        self.thread: threading.Thread | None = None


class Events:
    """The watcher of one connection and the subscriptions it feeds."""

    def __init__(self, options: ConnectionOptions, open_transport: Callable[[], StreamingTransport], host: str):
        self._options = options
        self._open_transport = open_transport
        self._host = host
        self._script = watch_script(options.transport == "winrm")
        self._lock = threading.Lock()
        self._sinks: set[EventSink] = set()
        self._run: _Run | None = None
        self._closed = False

    # -- subscriptions ---------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        """Deliver events into ``sink`` until the returned callable runs; start the watcher if it is not running."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed", host=self._host)
            run = self._run
            if run is None:
                run = self._run = _Run()
                run.thread = threading.Thread(
                    target=self._work, args=(run,), name="polyvisor-hyperv-events", daemon=True
                )
                run.thread.start()
            self._sinks.add(sink)
        budget = self._options.connect_timeout + self._options.read_timeout
        if not run.ready.wait(budget) or run.error is not None:
            # The subscription ends with the error instead of raising it: a stream's reader raises it, and a verb
            # whose wait subscribed carries on (the core then polls), for the verb itself did not fail.
            with self._lock:
                self._sinks.discard(sink)
            if run.error is None:
                self._stop(run)
            sink.fail(
                run.error or ConnectionError(f"the event watcher did not start within {budget}s", host=self._host)
            )
            return _nothing

        def cancel() -> None:
            with self._lock:
                self._sinks.discard(sink)
                last = not self._sinks and self._run is run
            if last:
                timer = threading.Timer(LINGER, self._linger_over, args=(run,))
                timer.daemon = True
                timer.start()

        return cancel

    def close(self) -> None:
        """Stop the watcher on the host and close its session (waits for that, a second or so)."""
        with self._lock:
            self._closed = True
            run, self._run = self._run, None
        if run is not None:
            run.stop.set()
            if run.thread is not None and run.thread is not threading.current_thread():
                run.thread.join(timeout=10)

    def _linger_over(self, run: _Run) -> None:
        with self._lock:
            if self._sinks or self._run is not run:
                return
        self._stop(run)

    def _stop(self, run: _Run) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
        run.stop.set()

    def _each(self) -> list[EventSink]:
        with self._lock:
            return list(self._sinks)

    # -- the watcher thread ----------------------------------------------------------------------------------------
    def _work(self, run: _Run) -> None:
        dropped: PolyvisorError | None = None  # the failure being recovered from
        dropped_at = 0.0
        while not run.stop.is_set():
            came_back = threading.Event()
            recovering = dropped is not None
            detail = f"the event watcher's session dropped and was reopened ({dropped.message if dropped else ''})"

            on_line = functools.partial(self._line_of, run, came_back if recovering else None, detail)
            try:
                transport = self._open_transport()
            except PolyvisorError as error:
                self._give_up(run, error)
                return
            try:
                transport.stream(self._script, on_line, run.stop)
                return  # stopped on request
            except Exception as error:
                failure = self._mapped(error)
            finally:
                with contextlib.suppress(Exception):
                    transport.close()
            if run.stop.is_set():
                return
            if came_back.is_set() or (dropped is None and run.ready.is_set()):
                # It ran (first time, or after a recovery) and then dropped: start recovering.
                dropped, dropped_at = failure, time.monotonic()
                log.debug("the event watcher dropped (%s); reopening it", failure)
            elif dropped is None:
                # It never got going: the subscriber that started it gets the error.
                self._give_up(run, failure)
                return
            if time.monotonic() - dropped_at >= RECOVER_WITHIN:
                lost = ConnectionLostError(
                    f"the event watcher's session dropped and could not be reopened ({failure.message})",
                    host=self._host,
                )
                self._give_up(run, lost)
                return
            run.stop.wait(_RETRY)

    def _line_of(self, run: _Run, came_back: threading.Event | None, detail: str, line: str) -> None:
        """Handle a line of a watcher that is recovering (``came_back`` given): its baseline reports the gap."""
        if self._on_line(line, run) and came_back is not None and not came_back.is_set():
            came_back.set()
            for sink in self._each():
                sink.gap(detail)

    def _on_line(self, line: str, run: _Run) -> bool:
        """Handle one watcher line; return whether it was the baseline marker."""
        try:
            item = json.loads(line)
        except ValueError:
            log.debug("ignoring a watcher line that is not JSON: %.200r", line)
            return False
        if not isinstance(item, dict):
            return False
        if item.get("kind") == "ready":
            run.ready.set()
            return True
        kind = _KINDS.get(str(item.get("kind")))
        uuid = normalize_uuid(str(item.get("id") or ""))
        if kind is None or uuid is None:
            return False
        name = str(item.get("name") or "")
        if kind is EventKind.UNDEFINED:
            event = Event(kind, uuid, name)
        else:
            status = status_from_vmstate(item.get("state"))
            event = Event(kind, uuid, name, status.state, status.raw_state)
        for sink in self._each():
            sink.emit(event)
        return False

    def _mapped(self, error: Exception) -> PolyvisorError:
        if isinstance(error, PolyvisorError):
            return error
        if isinstance(error, ScriptEnded):
            return error_from_record(error.record, doing="watching VM events", host=self._host)
        return error_from_transport(error, doing="watching VM events", host=self._host, endpoint=self._options.endpoint)

    def _give_up(self, run: _Run, error: PolyvisorError) -> None:
        """End the watcher: a subscriber still waiting for it to start gets ``error``; every subscription fails."""
        with self._lock:
            if self._run is run:
                self._run = None
            sinks = list(self._sinks) if run.ready.is_set() else []
            if run.ready.is_set():
                self._sinks.clear()
        if not run.ready.is_set():
            run.error = error
            run.ready.set()
            return
        for sink in sinks:
            sink.fail(error)
