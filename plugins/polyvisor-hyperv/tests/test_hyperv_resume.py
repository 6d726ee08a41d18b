"""A long operation whose connection drops mid-way, through polyvisor.testing.wire's FaultyProxy: on PSRP the backend
reconnects to the running pipeline (Disconnect, Reconnect) and returns its true outcome within its timeout; the WinRM
shell, which has no disconnected operations, reports the connection lost with the outcome unknown."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import PowerState
from polyvisor.errors import ConnectionLostError
from polyvisor.testing import eventually
from polyvisor.testing.wire import FaultyProxy

pytestmark = pytest.mark.loopback

TIMEOUT = 30.0


def _shutdown_across_a_drop(
    host: Any, uri: str, connect: Callable[..., polyvisor.Connection], vm_name: str
) -> tuple[list[Any], list[BaseException], float, PowerState]:
    """Shut down a VM whose guest ignores it; drop every connection while Stop-VM waits; then the guest powers off."""
    engine = host.engine.host
    with FaultyProxy(("127.0.0.1", host.port), seed=15) as proxy:
        conn = connect(uri.replace(f":{host.port}/", f":{proxy.port}/"))
        vm = conn.create({"name": vm_name, "labels": {"polyvisor.test/guest": "ignore-shutdown"}})
        vm.start()
        results: list[Any] = []
        failures: list[BaseException] = []
        took: list[float] = []

        def shut_down() -> None:
            began = time.monotonic()
            try:
                results.append(vm.shutdown(timeout=TIMEOUT))
            except BaseException as error:
                failures.append(error)
            took.append(time.monotonic() - began)

        worker = threading.Thread(target=shut_down)
        worker.start()
        assert engine.wait_until(lambda: engine.power.shutdowns_waiting == 1, timeout=10), "Stop-VM waits"
        psrp = "transport=psrp" in uri
        if psrp:
            eventually(lambda: host.receives()[0] == 1, timeout=10, what="the client's Receive held by the host")
        sent = host.receives()[1]
        assert proxy.drop() >= 1
        if psrp:
            # The guest powers off once the client is back, holding a Receive on a new connection.
            eventually(lambda: host.receives() >= (1, sent + 1), timeout=10, what="the resumed Receive")
        else:
            eventually(lambda: failures, timeout=10, what="the WinRM call to fail")
        engine.power.turn_off_vm(uuid.UUID(vm.uuid))
        worker.join(timeout=TIMEOUT + 5)
        assert not worker.is_alive()
        # The same connection serves the next call.
        return results, failures, took[0], vm.state()


def test_psrp_resumes_a_long_operation_after_a_dropped_connection(
    loopback_private: Any, uri_for: Callable[..., str], connect: Callable[..., polyvisor.Connection], vm_name: str
) -> None:
    results, failures, took, state = _shutdown_across_a_drop(
        loopback_private, uri_for(loopback_private, "psrp"), connect, vm_name
    )
    assert failures == []
    assert results[0].state is PowerState.STOPPED  # the true outcome, not "unknown"
    assert took <= TIMEOUT + 1
    assert state is PowerState.STOPPED


def test_winrm_reports_a_dropped_long_operation_as_outcome_unknown(
    loopback_private: Any, uri_for: Callable[..., str], connect: Callable[..., polyvisor.Connection], vm_name: str
) -> None:
    results, failures, took, state = _shutdown_across_a_drop(
        loopback_private, uri_for(loopback_private, "winrm"), connect, vm_name
    )
    assert results == []
    assert len(failures) == 1
    assert isinstance(failures[0], ConnectionLostError)
    assert failures[0].outcome_unknown
    assert took <= TIMEOUT + 1
    assert state is PowerState.STOPPED
