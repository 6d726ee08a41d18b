"""Waiting for a VM's status: the policy of one wait, and the polling loop both faces run.

The loop is :func:`wait`: read the status; if it is not yet what the call waits for, subscribe to the backend's
events (where it has them), then read, repeat the request when due and sleep, until the status is right or the
deadline passes. An event ends a sleep early; the sleep, growing each round, is the polling fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from polyvisor.backend import Deadline
from polyvisor.errors import TimeoutError
from polyvisor.model import Feature, VMStatus
from polyvisor.verbs.deadlines import READ_GRACE
from polyvisor.verbs.ops import Change, Handle, Read, Sleep, Steps, Subscribe, Unsubscribe

__all__ = ["FIRST_POLL", "MAX_POLL", "MAX_POLL_WITH_EVENTS", "Progress", "Waiting", "wait"]

log = logging.getLogger("polyvisor")

FIRST_POLL = 0.02
"""Seconds of the first sleep between two reads."""
MAX_POLL = 1.0
"""The longest sleep between two reads without events."""
MAX_POLL_WITH_EVENTS = 2.0
"""The longest sleep between two reads while events can end it early."""

Progress = Callable[[str], None]
"""A callback told, in words, what a long call is doing."""


class Waiting:
    """One wait for a VM's status: when it is over, when to repeat the request, how long to sleep before polling
    again (an event ends the sleep early). It does no I/O; :func:`wait` is the loop that uses it.

    ``repeat`` is the interval and the request to send again while waiting (a shutdown the backend wants
    repeated). The time comes from the deadline's clock.
    """

    def __init__(
        self,
        vm: Handle,
        done: Callable[[VMStatus], bool],
        deadline: Deadline,
        what: str,
        progress: Progress | None = None,
        repeat: tuple[float, Change] | None = None,
    ) -> None:
        self.done = done
        self.deadline = deadline
        self.what = what
        self.has_events = vm.connection.supports(Feature.EVENTS)
        self._vm = vm
        self._progress = progress
        self._repeat = repeat
        self._clock = deadline.clock
        self._next_repeat = self._clock.monotonic() + repeat[0] if repeat else None
        self._delay = FIRST_POLL
        self._max_delay = MAX_POLL_WITH_EVENTS if self.has_events else MAX_POLL

    def reached(self, status: VMStatus) -> bool:
        """Return whether the wait is over; raise TimeoutError once the deadline passed without it."""
        if self.done(status):
            return True
        remaining = self.deadline.remaining()
        log.debug("waiting %s: %s, %.2f s left", self.what, status.state.value, remaining)
        if remaining <= 0:
            raise TimeoutError(
                f"timed out after {self.deadline.timeout:g}s waiting {self.what}; it is {status}. The VM was left "
                "as it is: wait longer, or use stop() to power it off",
                host=self._vm.connection.host,
                vm=self._vm.seen_name,
            )
        if self._progress:
            self._progress(f"waiting {self.what} (now {status.state.value})")
        return False

    def repeat_due(self) -> Change | None:
        """Return the request to send again now, if it is time to."""
        if self._repeat is None or self._next_repeat is None or self._clock.monotonic() < self._next_repeat:
            return None
        log.debug("repeating the request while waiting %s", self.what)
        self._next_repeat = self._clock.monotonic() + self._repeat[0]
        return self._repeat[1]

    def next_delay(self) -> float:
        """Seconds to sleep before polling again, growing each round and never past the deadline."""
        delay = min(self.deadline.remaining(), self._delay)
        self._delay = min(self._delay * 2, self._max_delay)
        return delay


def wait(waiting: Waiting) -> Steps[VMStatus]:
    """The polling loop: return the status once ``waiting`` is over; raise TimeoutError at its deadline."""
    reading = waiting.deadline.extended(READ_GRACE)
    status: VMStatus = yield Read(reading)
    if waiting.done(status):
        return status  # most verbs return in their target state: no subscription needed
    if waiting.has_events:
        yield Subscribe()
    try:
        while True:
            # Read again even on the first round: the state may have changed before the subscription began.
            status = yield Read(reading)
            if waiting.reached(status):
                break
            again = waiting.repeat_due()
            if again is not None:
                yield again
            yield Sleep(waiting.next_delay())
    except Exception:
        if waiting.has_events:
            yield Unsubscribe()
        raise
    if waiting.has_events:
        yield Unsubscribe()
    return status
