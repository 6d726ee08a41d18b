"""libvirt calls bounded by the caller's deadline: the caller stops waiting when it passes.

libvirt's client API has no per-call timeout: a call on a connection whose network stalls blocks until the bytes
move again or keepalive closes the connection (``setKeepAlive(5, 3)``: 20 s of silence). So every call the backend
makes under a finite :meth:`~polyvisor.backend.Deadline.current` runs on a worker thread of a :class:`CallPool`,
and the caller waits for it no longer than the deadline: then it raises TimeoutError, saying whether the request
took effect is unknown, while the worker finishes (or fails) in the background once libvirt gives up or the wire
heals. Calls outside any deadline run on the caller's thread as before.

Label writes must not land out of order: a write the caller gave up on may still reach libvirtd after a newer one
and undo it. :class:`Ordered` makes later writes of the same VM wait until the abandoned one has ended.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from polyvisor.backend import Deadline
from polyvisor.errors import TimeoutError

__all__ = ["JOB_GRACE", "CallPool", "Ordered", "Task", "bounded"]

_T = TypeVar("_T")
_IDLE_WORKERS = 4  # threads kept waiting for work; more are started while every one is busy
_IDLE_SECONDS = 30.0


class Task(Generic[_T]):
    """One call on a worker: its outcome, once :attr:`done` is set."""

    def __init__(self, call: Callable[[], _T]) -> None:
        self.call = call
        self.done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self.call()
        except BaseException as error:  # handed to whoever waits
            self._error = error
        finally:
            self.done.set()

    def result(self) -> _T:
        """The call's value, or raise what it raised (only once :attr:`done` is set)."""
        if self._error is not None:
            raise self._error
        value: _T = self._result
        return value


class CallPool:
    """Daemon worker threads for one connection's calls (a stuck call never holds up the interpreter's exit)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def submit(self, call: Callable[[], _T]) -> Task[_T]:
        """Start ``call`` on an idle worker, or a new one."""
        task = Task(call)
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self, f"{self._name}-call")
        worker.give(task)
        return task

    def run(self, call: Callable[[], _T], *, doing: str, host: str, vm: str | None = None, grace: float = 0.0) -> _T:
        """Return ``call()``, waiting no longer than :meth:`Deadline.current` allows (plus ``grace``, for a call
        that reports its own deadline); raise TimeoutError after."""
        deadline = Deadline.current()
        if math.isinf(deadline.remaining()):
            return call()
        if deadline.expired:
            raise _too_late(deadline, doing, host, vm, sent=False)
        task = self.submit(call)
        if not task.done.wait(deadline.remaining() + grace):
            raise _too_late(deadline, doing, host, vm, sent=True)
        return task.result()

    def close(self) -> None:
        """Let idle workers end; busy ones end after their call."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.give(None)

    def _rest(self, worker: _Worker) -> bool:
        """Take ``worker`` back as idle; False when it should end instead."""
        with self._lock:
            if self._closed or len(self._idle) >= _IDLE_WORKERS:
                return False
            self._idle.append(worker)
            return True

    def _leave(self, worker: _Worker) -> bool:
        """Drop an idle ``worker`` that waited too long; False if it was just given work."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False


class _Worker:
    def __init__(self, pool: CallPool, name: str) -> None:
        self._pool = pool
        self._work: list[Task[Any] | None] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def give(self, task: Task[Any] | None) -> None:
        with self._ready:
            self._work.append(task)
            self._ready.notify()

    def _loop(self) -> None:
        while True:
            with self._ready:
                if not self._ready.wait_for(lambda: bool(self._work), timeout=_IDLE_SECONDS):
                    if self._pool._leave(self):
                        return
                    self._ready.wait_for(lambda: bool(self._work))
                task = self._work.pop(0)
            if task is None:
                return
            task.run()
            if not self._pool._rest(self):
                return


class Ordered:
    """Writes to one VM in the order they were made: a write waits for an earlier one its caller gave up on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Task[Any]] = {}

    def run(self, pool: CallPool, key: str, call: Callable[[], _T], *, doing: str, host: str) -> _T:
        """Run ``call`` through ``pool`` once any abandoned earlier call for ``key`` has ended."""
        deadline = Deadline.current()
        with self._lock:
            earlier = self._pending.get(key)
        if earlier is not None and not earlier.done.wait(_wait_seconds(deadline)):
            raise TimeoutError(
                f"timed out after {deadline.timeout:g}s {doing}: an earlier write to this VM, cut off by its own "
                "deadline, has not ended yet (the network to libvirtd is down or slow); nothing was sent",
                host=host,
                vm=key,
            )
        if math.isinf(deadline.remaining()):
            return call()
        task = pool.submit(call)
        if not task.done.wait(deadline.remaining()):
            with self._lock:
                self._pending[key] = task
            raise _too_late(deadline, doing, host, key, sent=True)
        with self._lock:
            if self._pending.get(key) is earlier:
                self._pending.pop(key, None)
        return task.result()


def _wait_seconds(deadline: Deadline) -> float | None:
    remaining = deadline.remaining()
    return None if math.isinf(remaining) else remaining


def _too_late(deadline: Deadline, doing: str, host: str, vm: str | None, *, sent: bool) -> TimeoutError:
    if not sent:
        return TimeoutError(
            f"timed out after {deadline.timeout:g}s before {doing}; nothing was sent, and the VM was left as the "
            "hypervisor has it",
            host=host,
            vm=vm,
        )
    return TimeoutError(
        f"timed out after {deadline.timeout:g}s {doing}: libvirtd did not answer in time (the network to it is down "
        "or slow), so whether the request took effect is unknown; check before trying again",
        host=host,
        vm=vm,
    )


class _Bounded(Protocol):
    """What :func:`bounded` needs of the object whose primitives it wraps (the backend)."""

    _calls: CallPool

    @property
    def host(self) -> str: ...


_S = TypeVar("_S", bound=_Bounded)
_P = ParamSpec("_P")
_R = TypeVar("_R")


JOB_GRACE = 0.8
"""Seconds past the deadline a primitive that runs a domain job is waited for: at its deadline it aborts the job
itself and says so (``LibvirtClient.bounded``, which waits 0.5 s for the abort), within the contract's second."""


def bounded(
    doing: str, *, grace: float = 0.0
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R]]:
    """Run the primitive on its object's :class:`CallPool`: the caller waits no longer than
    :meth:`~polyvisor.backend.Deadline.current` (or the primitive's own deadline) allows, plus ``grace`` for a
    primitive that bounds itself (:data:`JOB_GRACE`)."""

    def wrap(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
        def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            vm = args[0] if args and isinstance(args[0], str) else None
            deadline = kwargs.get("deadline", args[-1] if args and isinstance(args[-1], Deadline) else None)
            with deadline.applied() if isinstance(deadline, Deadline) else contextlib.nullcontext():
                call = functools.partial(method, self, *args, **kwargs)
                return self._calls.run(call, doing=doing, host=self.host, vm=vm, grace=grace)

        functools.update_wrapper(run, method)
        return run

    return wrap
