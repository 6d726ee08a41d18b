"""libvirt states and reasons map onto the contract's table."""

from __future__ import annotations

import libvirt
import pytest

from polyvisor import PowerState as P
from polyvisor_libvirt.states import to_status


@pytest.mark.parametrize(
    ("state", "reason", "saved", "expected", "critical"),
    [
        (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED, False, P.RUNNING, False),
        (libvirt.VIR_DOMAIN_BLOCKED, 0, False, P.RUNNING, False),
        (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, False, P.STOPPED, False),
        (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED, True, P.SAVED, False),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, False, P.PAUSED, False),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR, False, P.PAUSED, True),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP, False, P.STARTING, False),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_SAVE, False, P.SAVING, False),
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN, False, P.STOPPING, False),
        (libvirt.VIR_DOMAIN_SHUTDOWN, 0, False, P.STOPPING, False),
        (libvirt.VIR_DOMAIN_PMSUSPENDED, 0, False, P.SUSPENDED, False),
        (libvirt.VIR_DOMAIN_CRASHED, 0, False, P.CRASHED, True),
        (libvirt.VIR_DOMAIN_NOSTATE, 0, False, P.UNKNOWN, False),
        (99, 0, False, P.UNKNOWN, False),
    ],
)
def test_mapping(state: int, reason: int, saved: bool, expected: P, critical: bool) -> None:
    status = to_status(state, reason, managed_save=saved)
    assert status.state is expected
    assert status.critical is critical


def test_raw_state_and_reason_are_names() -> None:
    status = to_status(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, managed_save=False)
    assert (status.raw_state, status.reason) == ("VIR_DOMAIN_PAUSED", "user")
