"""Native VM events: one long-running watcher pipeline per connection feeds every subscription.

The watcher is the fixed script ``scripts/watch.ps1``: a loop on the host that lists the VMs (``Get-VM``: Id, Name,
State) every 500 ms and writes one JSON line per change (its first round writes every VM, then ``ready``). It runs
on a session of its own (a second runspace pool, or a second WinRM shell), so verbs on the connection's session
never queue behind it; over PSRP its output objects arrive while it runs (``begin_invoke``/``poll_invoke``), over
the WinRM shell powershell.exe writes each line to stdout and the shell's Receive returns it.

Why a loop in the pipeline and not CIM indications: a ``__InstanceModificationEvent WITHIN n`` query on
``Msvm_ComputerSystem`` is itself polled by WMI every ``n`` seconds (Microsoft, "WITHIN Clause"), so it is no
faster, and it needs an event subscriber plus ``Wait-Event`` in the remote session; the loop needs only Get-VM,
which every other part of the backend already relies on, and the loopback host models it faithfully.

Each subscription has its own view of the VMs: a listing taken on the connection's session when it subscribes.
Every line from the watcher (and the watcher's first round, whenever it arrives) is compared with that view, so a
subscription reports exactly the changes after its own listing, even when it joins a watcher that has not yet seen
a VM created a moment ago, and ``subscribe()`` never waits for the watcher to start. A watcher that cannot start
ends the subscriptions with the error (a stream's reader raises it) rather than raising from ``subscribe()``: the
core also subscribes while a verb waits, and the verb must not fail for it.

When the last subscription is cancelled the watcher keeps running for :data:`LINGER` seconds (the core subscribes
for every wait, verb after verb) and is then stopped on the host (PSRP Stop / WinRS Terminate) and its session
closed; closing the connection stops it at once. When the watcher's session drops (host restart, shell or pool
deleted, connection reset), every subscription is told (``EventSink.dropped``) and it is started again on a new
session for up to :data:`RECOVER_WITHIN` seconds: once it runs again every subscription gets a gap (then the
changes its first round shows); if it cannot, every subscription fails with ConnectionLostError, and an event
stream keeps trying for its own reconnect window (:class:`polyvisor.events.ResumingSubscription`).
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
from polyvisor.model import Event, EventKind, VMInfo, normalize_uuid
from polyvisor_hyperv.errors import error_from_record, error_from_transport
from polyvisor_hyperv.options import ConnectionOptions
from polyvisor_hyperv.states import to_status
from polyvisor_hyperv.transport import ScriptEnded

__all__ = ["LINGER", "RECOVER_WITHIN", "Events", "watch_script"]

log = logging.getLogger(__name__)

LINGER = 2.0
"""Seconds the watcher keeps running after its last subscription is cancelled."""
RECOVER_WITHIN = 1.0
"""Seconds after a dropped watcher session within which it must run again, else subscriptions fail."""
_RETRY = 0.1

Seen = tuple[str, str]
"""A VM as a view holds it: (name, Hyper-V state name)."""


class StreamingTransport(Protocol):
    """What the watcher needs from a transport: ``stream`` (PSRP and WinRM shell transports have it)."""

    def stream(self, script: str, on_line: Callable[[str], None], stop: threading.Event) -> None: ...

    def close(self) -> None: ...


@cache
def watch_script(to_console: bool) -> str:
    """The watcher script: a fixed first line choosing where lines go, then the fixed ``watch.ps1``."""
    text = resources.files("polyvisor_hyperv").joinpath("scripts/watch.ps1").read_text(encoding="utf-8")
    return ("$toConsole = $true\n" if to_console else "$toConsole = $false\n") + text


class _Subscription:
    """One sink and its view of the VMs; lines that arrive before its listing are kept until it is there."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.view: dict[str, Seen] | None = None
        self.pending: list[tuple[str, str, Seen | None]] = []

    def apply(self, kind: str, uuid: str, seen: Seen | None) -> None:
        """Compare one watcher fact (``seen`` None: the VM is gone) with the view; emit what changed."""
        if self.view is None:
            self.pending.append((kind, uuid, seen))
            return
        before = self.view.get(uuid)
        if seen is None:
            if before is not None:
                del self.view[uuid]
                self.sink.emit(Event(EventKind.UNDEFINED, uuid, before[0]))
            return
        self.view[uuid] = seen
        status = to_status(seen[1])
        if before is None:
            self.sink.emit(Event(EventKind.DEFINED, uuid, seen[0], status.state, status.raw_state))
        elif before[1] != seen[1]:
            self.sink.emit(Event(EventKind.STATE, uuid, seen[0], status.state, status.raw_state))

    def baseline(self, vms: list[VMInfo]) -> None:
        """Take the listing as the view and apply what arrived meanwhile."""
        self.view = {vm.uuid: (vm.name, vm.status.raw_state) for vm in vms}
        pending, self.pending = self.pending, []
        for kind, uuid, seen in pending:
            self._replay(kind, uuid, seen)

    def _replay(self, kind: str, uuid: str, seen: Seen | None) -> None:
        if kind == "round":
            self.round_over(uuid)
        else:
            self.apply(kind, uuid, seen)

    def round_over(self, present: str) -> None:
        """A watcher's first round ended: VMs the view has that the round did not list are gone."""
        if self.view is None:
            self.pending.append(("round", present, None))
            return
        listed = set(present.split(",")) if present else set()
        for uuid in [uuid for uuid in self.view if uuid not in listed]:
            self.apply("gone", uuid, None)


class _Run:
    """One incarnation of the watcher thread (a new one starts after a failure or a linger ran out)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


class Events:
    """The watcher of one connection and the subscriptions it feeds."""

    def __init__(
        self,
        options: ConnectionOptions,
        open_transport: Callable[[], StreamingTransport],
        list_vms: Callable[[], list[VMInfo]],
        host: str,
    ) -> None:
        self._options = options
        self._open_transport = open_transport
        self._list_vms = list_vms
        self._host = host
        self._script = watch_script(options.transport == "winrm")
        self._lock = threading.Lock()
        self._subs: list[_Subscription] = []
        self._run: _Run | None = None
        self._closed = False

    # -- subscriptions ---------------------------------------------------------------------------------------------
    def subscribe(self, sink: EventSink) -> Subscription:
        """Deliver events into ``sink`` until the returned callable runs; start the watcher if it is not running.

        Takes one listing on the connection's session (the subscription's view); raises only if that fails.
        """
        sub = _Subscription(sink)
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
            self._subs.append(sub)
        try:
            vms = self._list_vms()
        except BaseException:
            self._leave(sub, run)
            raise
        with self._lock:
            sub.baseline(vms)
        return lambda: self._leave(sub, run)

    def _leave(self, sub: _Subscription, run: _Run) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            last = not self._subs and self._run is run
        if last:
            timer = threading.Timer(LINGER, self._linger_over, args=(run,))
            timer.daemon = True
            timer.start()

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
            if self._subs or self._run is not run:
                return
            self._run = None
        run.stop.set()

    # -- the watcher thread ----------------------------------------------------------------------------------------
    def _work(self, run: _Run) -> None:
        ran = False  # the watcher reached its first round at least once: a later start is a recovery
        failing_since: float | None = None
        failure: PolyvisorError | None = None
        while not run.stop.is_set():
            round_ids: list[str] = []
            gap = f"the event watcher's session dropped and was reopened ({failure.message})" if ran and failure else ""
            came_back = threading.Event()
            on_line = functools.partial(self._line_of, round_ids, gap, came_back)
            transport = self._open_transport()
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
            now = time.monotonic()
            if came_back.is_set() or failing_since is None:
                ran = ran or came_back.is_set()
                failing_since = now  # a fresh failure: it ran and dropped, or the first start failed
                log.debug("the event watcher failed (%s); starting it again", failure)
                if ran:
                    self._dropped()
            if now - failing_since >= RECOVER_WITHIN:
                if ran:
                    message = f"the event watcher's session dropped and could not be reopened ({failure.message})"
                    failure = ConnectionLostError(message, host=self._host)
                self._give_up(run, failure)
                return
            run.stop.wait(_RETRY)

    def _line_of(self, round_ids: list[str], gap: str, came_back: threading.Event, line: str) -> None:
        if self._on_line(line, round_ids, gap):
            came_back.set()

    def _on_line(self, line: str, round_ids: list[str], gap: str) -> bool:
        """Hand one watcher line to every subscription; return whether it ended the watcher's first round."""
        try:
            item = json.loads(line)
        except ValueError:
            log.debug("ignoring a watcher line that is not JSON: %.200r", line)
            return False
        if not isinstance(item, dict):
            return False
        kind = str(item.get("kind"))
        with self._lock:
            subs = list(self._subs)
            if kind == "ready":
                present = ",".join(round_ids)
                for sub in subs:
                    if gap:
                        sub.sink.gap(gap)
                    sub.round_over(present)
                return True
            uuid = normalize_uuid(str(item.get("id") or ""))
            if uuid is None or kind not in ("first", "defined", "state", "undefined"):
                return False
            if kind == "first":
                round_ids.append(uuid)
            seen = None if kind == "undefined" else (str(item.get("name") or ""), str(item.get("state") or ""))
            for sub in subs:
                sub.apply(kind, uuid, seen)
        return False

    def _mapped(self, error: Exception) -> PolyvisorError:
        if isinstance(error, PolyvisorError):
            return error
        if isinstance(error, ScriptEnded):
            return error_from_record(error.record, doing="watching VM events", host=self._host)
        return error_from_transport(error, doing="watching VM events", host=self._host, endpoint=self._options.endpoint)

    def _dropped(self) -> None:
        """Tell every subscription that the watcher's link is down: events may be missed from now on."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.sink.dropped()

    def _give_up(self, run: _Run, error: PolyvisorError) -> None:
        """End the watcher and every subscription with ``error`` (their streams raise it)."""
        with self._lock:
            if self._run is run:
                self._run = None
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.sink.fail(error)
