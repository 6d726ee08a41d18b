"""VMState names and numbers map onto the contract's power states."""

from __future__ import annotations

import pytest

from polyvisor.model import PowerState
from polyvisor_hyperv.states import VMSTATE_NAMES, status_from_vmstate

P = PowerState

EXPECTED = {
    "Running": (P.RUNNING, False),
    "RunningCritical": (P.RUNNING, True),
    "Off": (P.STOPPED, False),
    "OffCritical": (P.STOPPED, True),
    "Saved": (P.SAVED, False),
    "FastSaved": (P.SAVED, False),
    "Paused": (P.PAUSED, False),
    "Starting": (P.STARTING, False),
    "Reset": (P.STARTING, False),
    "ForceReboot": (P.STARTING, False),
    "Stopping": (P.STOPPING, False),
    "ForceShutdown": (P.STOPPING, False),
    "Saving": (P.SAVING, False),
    "FastSaving": (P.SAVING, False),
    "Pausing": (P.PAUSING, False),
    "Resuming": (P.RESUMING, False),
    "Other": (P.UNKNOWN, False),
    "Hibernated": (P.UNKNOWN, False),
    "ComponentServicing": (P.UNKNOWN, False),
    "StoppingCritical": (P.STOPPING, True),
    "SavedCritical": (P.SAVED, True),
    "PausedCritical": (P.PAUSED, True),
    "StartingCritical": (P.STARTING, True),
    "ResetCritical": (P.STARTING, True),
    "SavingCritical": (P.SAVING, True),
    "PausingCritical": (P.PAUSING, True),
    "ResumingCritical": (P.RESUMING, True),
    "FastSavedCritical": (P.SAVED, True),
    "FastSavingCritical": (P.SAVING, True),
}


def test_every_vmstate_value_has_an_expectation() -> None:
    assert set(VMSTATE_NAMES.values()) == set(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_by_name(name: str, expected: tuple[PowerState, bool]) -> None:
    status = status_from_vmstate(name)
    assert (status.state, status.critical) == expected
    assert status.raw_state == name


@pytest.mark.parametrize(("number", "name"), sorted(VMSTATE_NAMES.items()))
def test_by_number_reports_the_name(number: int, name: str) -> None:
    for value in (number, str(number)):
        status = status_from_vmstate(value)
        assert status.raw_state == name
        assert (status.state, status.critical) == EXPECTED[name]


@pytest.mark.parametrize("value", ["Bogus", 7, "BogusCritical", "", None])
def test_unknown_values_are_never_running(value: object) -> None:
    status = status_from_vmstate(value)
    assert status.state in (P.UNKNOWN, P.CRASHED)
    assert status.state is (P.CRASHED if str(value).endswith("Critical") else P.UNKNOWN)
