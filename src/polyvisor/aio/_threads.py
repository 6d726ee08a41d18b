"""Blocking calls off the event loop: in a connection's bounded pool, or in a thread of their own.

A task awaiting either can be cancelled at once; the call itself runs on (Python cannot interrupt a thread), and
what it returns is handed to a cleanup callback instead of the task that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import Future as ThreadFuture
from typing import Any, TypeVar

__all__ = ["in_executor", "in_own_thread"]

_T = TypeVar("_T")


async def in_executor(
    executor: Executor,
    call: Callable[..., _T],
    *args: Any,
    abandoned: Callable[[_T], object] | None = None,
    **kwargs: Any,
) -> _T:
    """Return ``call(*args, **kwargs)`` run in ``executor``.

    If the awaiting task is cancelled while the call runs, ``abandoned`` receives its result once it returns
    (to close or unsubscribe what nobody will use); a call that had not started yet never runs.
    """
    future = executor.submit(functools.partial(call, *args, **kwargs))
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if abandoned is not None:
            future.add_done_callback(functools.partial(_hand_over, abandoned))
        raise


def _hand_over(abandoned: Callable[[_T], object], future: ThreadFuture[_T]) -> None:
    if not future.cancelled() and future.exception() is None:
        abandoned(future.result())


def in_own_thread(
    call: Callable[[], _T], name: str, *, abandoned: Callable[[_T], object] | None = None
) -> asyncio.Future[_T]:
    """Run ``call`` in a new daemon thread; return a future of its result.

    For calls that must not queue behind a busy pool (closing a connection) or that may never return (opening a
    connection to a host that does not answer): a daemon thread left behind does not hold up the interpreter's
    exit. If the future is cancelled before the call returns, ``abandoned`` receives the result (in a thread).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def abandon(result: _T) -> None:
        if abandoned is not None:
            abandoned(result)

    def run() -> None:
        try:
            result = call()
        except BaseException as error:  # handed to the awaiting task
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, functools.partial(future.set_exception, error), None)
            return
        try:
            loop.call_soon_threadsafe(
                _settle, future, functools.partial(future.set_result, result), functools.partial(abandon, result)
            )
        except RuntimeError:  # the loop is closed
            abandon(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _settle(future: asyncio.Future[Any], outcome: Callable[[], None], abandon: Callable[[], None] | None) -> None:
    """Deliver a thread's outcome on the loop; a result that arrives after the future was cancelled is abandoned."""
    if not future.done():
        outcome()
    elif abandon is not None:
        threading.Thread(target=abandon, name="polyvisor-aio-abandon", daemon=True).start()
