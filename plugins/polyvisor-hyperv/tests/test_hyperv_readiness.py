"""Readiness on Hyper-V: the guest's heartbeat (Get-VM Heartbeat), over both transports against the loopback host."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import Feature, TimeoutError
from polyvisor_hyperv.readiness import HEARTBEAT_NAMES, heartbeat_answer

Connect = Callable[..., polyvisor.Connection]
UriFor = Callable[..., str]


@pytest.mark.parametrize(
    ("value", "ready", "unavailable"),
    [
        ("OkApplicationsHealthy", True, False),
        ("OkApplicationsUnknown", True, False),
        (5, True, False),  # a reply that carries the enum's number
        ("OkApplicationsCritical", False, False),
        ("NoContact", False, False),
        ("LostCommunication", False, False),
        (None, False, False),
        ("Disabled", False, True),
    ],
)
def test_each_heartbeat_status_has_an_answer(value: object, ready: bool, unavailable: bool) -> None:
    answer = heartbeat_answer(value)
    assert (answer.source, answer.ready, answer.unavailable) == ("heartbeat", ready, unavailable)
    assert answer.detail
    assert set(HEARTBEAT_NAMES.values()) >= {"NoContact", "OkApplicationsHealthy", "Disabled"}


def test_readiness_waits_for_the_guests_heartbeat(
    uri_for: UriFor, loopback_private: Any, transport: str, connect: Connect, vm_name: str
) -> None:
    loopback_private.engine.host.kvp_delay = 2.5
    conn = connect(uri_for(loopback_private, transport))
    assert conn.supports(Feature.READINESS)
    assert conn.backend.ready_sources == ("heartbeat",)
    vm = conn.create({"name": vm_name, "nics": [{"network": "Default Switch"}]})
    try:
        vm.start()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"asked heartbeat: heartbeat: not ready \(NoContact: no heartbeat"):
            vm.wait_until_ready(timeout=1)
        ready = vm.wait_until_ready(timeout=30)
        assert time.monotonic() - started >= 2.0
        assert ready.sources == ("heartbeat",)
        assert ready.answers[0].detail == "OkApplicationsHealthy: the guest's integration services answer"
    finally:
        vm.ensure("stopped", force=True)
        vm.delete()
