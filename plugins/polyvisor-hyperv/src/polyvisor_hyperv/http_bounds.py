"""Every HTTP exchange of a transport bounded by the call's deadline, whatever pypsrp and pywinrm configure.

Both client libraries give each HTTP request fixed socket timeouts (``connection_timeout``/``read_timeout``, or
pywinrm's one ``read_timeout_sec``), and pypsrp retries a Receive that timed out up to five times with a growing
sleep between. Through a stalling network a call then outlived its timeout by those sums (a label update took 23 s
with read_timeout=8, connect_timeout=4). So each transport wraps the ``send`` of its requests session's adapters
(:func:`bound_session`): before every request, including the extra legs of an NTLM or Kerberos handshake, the
connect and read timeouts become at most what the transport's :class:`Budget` has left, and a request cut off by
that raises :class:`DeadlinePassed`, which neither library retries.

A socket timeout bounds each wait for bytes, not a whole response: a peer that trickles a reply a byte at a time
could outlast it. WS-Management replies are small (one or two reads), and a wire that stalls is bounded.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from polyvisor.backend import Deadline

__all__ = ["Budget", "DeadlinePassed", "bound_session"]

_BOUND = "_polyvisor_bound"  # marks an adapter whose send is already wrapped


class DeadlinePassed(Exception):
    """An HTTP request was cut off (or not sent) because the call's deadline passed."""


class Budget:
    """How long the transport's current call may still wait on the network; the wrapped adapters read it."""

    def __init__(self) -> None:
        self._deadline = Deadline.never()

    def __repr__(self) -> str:
        return f"<Budget {self._deadline!r}>"

    def remaining(self) -> float:
        """Seconds the current call may still wait (``math.inf`` outside any call)."""
        return self._deadline.remaining()

    @contextlib.contextmanager
    def until(self, deadline: Deadline) -> Iterator[None]:
        """Bound the requests made inside the block by ``deadline``."""
        outer, self._deadline = self._deadline, deadline
        try:
            yield
        finally:
            self._deadline = outer


def bound_session(session: Any, budget: Budget) -> None:
    """Make every adapter of a requests ``session`` keep each request within ``budget`` (once per adapter)."""
    import requests

    # Both libraries read the environment's proxy and CA settings when they build the session. Left on, requests
    # reads them again on every request, and pywinrm's ``no_proxy='*'`` makes it set and delete
    # os.environ["no_proxy"] around each one: threads of other connections then raced on it (KeyError: 'no_proxy'
    # in a fleet uploading to ten hosts at once).
    session.trust_env = False
    for adapter in session.adapters.values():
        if getattr(adapter, _BOUND, False):
            continue
        original = adapter.send

        def send(request: Any, *args: Any, _send: Any = original, **kwargs: Any) -> Any:
            remaining = budget.remaining()
            if remaining <= 0:
                raise DeadlinePassed("the call's deadline passed before the request was sent")
            connect, read = _split(kwargs.get("timeout"))
            cut = remaining < connect or remaining < read
            kwargs["timeout"] = (_seconds(min(connect, remaining)), _seconds(min(read, remaining)))
            try:
                return _send(request, *args, **kwargs)
            except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as error:
                if cut:
                    raise DeadlinePassed(f"no answer within the {remaining:.2f}s the call had left") from error
                raise

        adapter.send = send
        setattr(adapter, _BOUND, True)


def _split(timeout: Any) -> tuple[float, float]:
    """requests' ``timeout`` (None, a number, or a (connect, read) pair) as two numbers of seconds."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    return (math.inf if connect is None else float(connect), math.inf if read is None else float(read))


def _seconds(value: float) -> float | None:
    return None if math.isinf(value) else value
