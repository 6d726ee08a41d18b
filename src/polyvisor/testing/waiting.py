"""Poll until a condition holds: for tests that watch something offering no event to await."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    what: str | None = None,
    interval: float = 0.01,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Call ``probe`` until it returns something true, and return that; fail after ``timeout`` seconds.

    A probe that raises :class:`AssertionError` has not held yet: it is called again, and the last such error is
    the cause of the failure. The failure is an :class:`AssertionError` (a test failure, not an error) saying
    ``what`` was awaited (default: the probe's name), for how long, how often the probe was called and what it
    last returned or raised. Use it only where nothing can be awaited (an event, a thread, a process): a counter of
    another component, a file another process writes, the output of a thread.

    ``clock`` and ``sleep`` (seconds) let a test of this helper run without waiting.
    """
    if timeout < 0:
        raise ValueError(f"timeout must be at least 0 seconds, got {timeout}")
    deadline = clock() + timeout
    calls = 0
    while True:
        calls += 1
        failure: AssertionError | None = None
        try:
            result = probe()
        except AssertionError as error:
            failure, result = error, None
        if result:
            return result
        if clock() >= deadline:
            name = what or getattr(probe, "__name__", repr(probe))
            last = f"raised {failure}" if failure is not None else f"returned {result!r}"
            times = "once" if calls == 1 else f"{calls} times"
            raise AssertionError(f"timed out after {timeout}s waiting for {name}: probed {times}, last {last}") from (
                failure
            )
        sleep(min(interval, max(deadline - clock(), 0.0)))
