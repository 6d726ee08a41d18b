"""Run one job per host (or VM) on daemon threads, at most ``limit`` at once, each bounded by its own timeout.

A job that outlives its timeout is abandoned, not waited for: its result is recorded as a
:class:`~polyvisor.errors.TimeoutError` and its slot goes to the next job. Daemon threads, unlike those of
``concurrent.futures``, never hold up the interpreter's exit while a host hangs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from polyvisor.errors import PolyvisorError
from polyvisor.fleet.planning import abandoned, as_polyvisor_error
from polyvisor.fleet.results import HostResult

__all__ = ["Job", "run_jobs"]

log = logging.getLogger("polyvisor.fleet")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One host's (or VM's) work: ``work(deadline)`` gets the ``time.monotonic()`` instant it must finish by."""

    host: str
    uri: str
    timeout: float
    work: Callable[[float], T]
    vm: str | None = None
    on_abandon: Callable[[], None] | None = None
    """Called (on the dispatching thread) when the job is abandoned, e.g. to stop reusing its connection."""


def run_jobs(jobs: Sequence[Job[T]], limit: int) -> list[HostResult[T]]:
    """Run ``jobs`` concurrently; return one result per job, in the jobs' order, within their timeouts."""
    cond = threading.Condition()
    pending = deque(range(len(jobs)))
    running: dict[int, float] = {}  # job index -> when it started
    results: dict[int, HostResult[T]] = {}

    def finish(index: int, started: float, value: T | None, error: PolyvisorError | None) -> None:
        job = jobs[index]
        with cond:
            if index not in running:  # abandoned: the caller has its TimeoutError already
                log.debug("%s answered %.2f s after it was abandoned", job.host, time.monotonic() - started)
                return
            del running[index]
            results[index] = HostResult(job.host, job.uri, value, error, time.monotonic() - started, job.vm)
            cond.notify_all()

    def worker(index: int, started: float) -> None:
        job = jobs[index]
        try:
            value = job.work(started + job.timeout)
        except Exception as error:  # every failure becomes this host's result; the others carry on
            finish(index, started, None, as_polyvisor_error(error, job.host))
        else:
            finish(index, started, value, None)

    with cond:
        while pending or running:
            while pending and len(running) < limit:
                index = pending.popleft()
                started = time.monotonic()
                running[index] = started
                name = f"polyvisor-fleet-{jobs[index].host}"
                threading.Thread(target=worker, args=(index, started), name=name, daemon=True).start()
            now = time.monotonic()
            expired = [index for index, started in running.items() if now >= started + jobs[index].timeout]
            for index in expired:
                job = jobs[index]
                started = running.pop(index)
                error = abandoned(job.host, job.vm, job.timeout)
                results[index] = HostResult(job.host, job.uri, None, error, now - started, job.vm)
                log.info("%s timed out after %g s", job.host, job.timeout)
                if job.on_abandon is not None:
                    job.on_abandon()
            if expired:
                continue  # freed slots go to pending jobs first
            if running:
                wake = min(started + jobs[index].timeout for index, started in running.items())
                cond.wait(max(wake - now, 0.0))
    return [results[index] for index in range(len(jobs))]
