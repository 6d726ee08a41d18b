"""The sync face's I/O: running the verb engine's steps (:mod:`polyvisor.verbs`) blocking, in the caller's thread.

:func:`run` carries out each request the steps yield and sends back the answer; an error a request raises is
thrown into the steps, which decide whether it ends the call. While subscribed, an event ends a sleep at once.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol, TypeVar

from polyvisor.backend import Backend, EventSink, Subscription
from polyvisor.calls import change, read
from polyvisor.errors import PolyvisorError
from polyvisor.handle import vm_capabilities
from polyvisor.model import Capabilities, VMStatus
from polyvisor.provisioning.readiness import BANNER_LIMIT, banner_complete, socket_error
from polyvisor.verbs.ops import (
    Change,
    Handle,
    Knock,
    KnockReply,
    Probe,
    Query,
    Read,
    Sleep,
    Steps,
    Subscribe,
    Unsubscribe,
)

__all__ = ["BlockingHandle", "knock", "run"]

_T = TypeVar("_T")


class BlockingHandle(Handle, Protocol):
    """A handle whose reads block (:class:`polyvisor.VM`)."""

    def status(self, *, timeout: float = ...) -> VMStatus: ...

    def capabilities(self, *, timeout: float = ...) -> Capabilities: ...


def run(vm: BlockingHandle, steps: Steps[_T]) -> _T:
    """Run ``steps`` on ``vm`` to their end and return their result."""
    sink: EventSink | None = None
    cancel: Subscription | None = None
    answer: Any = None
    error: PolyvisorError | None = None
    uuid = vm.uuid

    def status_of(backend: Backend) -> VMStatus:
        return backend.status(uuid)

    try:
        while True:
            try:
                op = steps.send(answer) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            answer, error = None, None
            try:
                if isinstance(op, Read):
                    answer = read(vm.connection, status_of, op.deadline)
                elif isinstance(op, Query):
                    answer = read(vm.connection, op.call, op.deadline)
                elif isinstance(op, Change):
                    answer = change(vm.connection, op.call, op.doing, vm.seen_name, op.deadline)
                elif isinstance(op, Probe):
                    answer = vm_capabilities(vm.connection, vm.uuid, op.deadline)
                elif isinstance(op, Sleep):
                    if sink is None:
                        vm.connection.clock.sleep(op.seconds)
                    elif sink.take(op.seconds) is not None:  # an event wakes us at once; the timeout polls
                        while sink.take(0) is not None:
                            pass
                elif isinstance(op, Knock):
                    answer = knock(op)
                elif isinstance(op, Subscribe):
                    sink = EventSink()
                    cancel = vm.connection.backend.subscribe(sink)
                elif isinstance(op, Unsubscribe):
                    sink = None
                    if cancel is not None:
                        ending, cancel = cancel, None
                        ending()
            except PolyvisorError as failed:
                error = failed
    finally:
        if cancel is not None:
            cancel()


def knock(op: Knock) -> KnockReply:
    """Carry out a :class:`~polyvisor.verbs.ops.Knock` in this thread: connect, read the first words, close.

    Sockets wait in real time, so the limit is on the monotonic clock, whatever clock the connection's waits read.
    """
    ends = time.monotonic() + op.seconds
    data = b""
    try:
        with socket.create_connection((op.host, op.port), timeout=op.seconds) as conn:
            while not banner_complete(data):
                left = ends - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no identification line in time")
                conn.settimeout(left)
                chunk = conn.recv(BANNER_LIMIT - len(data))
                if not chunk:
                    break
                data += chunk
    except OSError as error:  # socket.timeout is an OSError too
        return KnockReply(data, socket_error(error))
    return KnockReply(data)
