"""Storage and network calls through a stalled wire (issue 16), over both transports: each returns or raises
TimeoutError within its timeout + 1 s, an upload or download stalled mid-way included, and leaves nothing under a
transfer's final name (see :mod:`polyvisor.testing.stalls`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor.testing.stalls import stalled_host_calls, violations
from polyvisor.testing.wire import FaultyProxy

pytestmark = pytest.mark.loopback


def test_storage_and_network_calls_stay_bounded_on_a_stalled_wire(
    loopback_private: Any,
    transport: str,
    uri_for: Callable[..., str],
    connect: Callable[..., polyvisor.Connection],
    tmp_path: Path,
) -> None:
    seed = random.randrange(2**31)
    with FaultyProxy(("127.0.0.1", loopback_private.port), seed=seed) as proxy:
        uri = uri_for(loopback_private, transport, operation_timeout="5", read_timeout="8", connect_timeout="4")
        conn = connect(uri.replace(f":{loopback_private.port}/", f":{proxy.port}/"))
        run = stalled_host_calls(conn, proxy, tmp_path, timeout=2.0)
    calls = {row.call for row in run.timed}
    assert {"pools", "volumes", "networks", "upload_image", "create_volume"} <= calls, calls
    assert not violations(run), "\n".join(violations(run))
    assert not run.leftovers, run.leftovers
    print({row.call: round(row.seconds, 2) for row in run.timed})
