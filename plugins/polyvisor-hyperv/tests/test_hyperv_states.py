"""VMState names map onto the contract's power states; numbers are never trusted (they differ by release)."""

from __future__ import annotations

import pytest

from polyvisor.model import PowerState
from polyvisor_hyperv.states import to_status

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


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_by_name(name: str, expected: tuple[PowerState, bool]) -> None:
    status = to_status(name)
    assert (status.state, status.critical) == expected
    assert status.raw_state == name


@pytest.mark.parametrize("number", [2, "2", 3, 32783, 32785])
def test_a_number_is_unknown_never_a_guessed_state(number: object) -> None:
    # Both transports send names; a number would mean a runner that did not convert, and VMState's numbering
    # is sourced for one Windows build only.
    assert to_status(number).state is P.UNKNOWN


@pytest.mark.parametrize("value", ["Bogus", 7, "BogusCritical", "", None])
def test_unknown_values_are_never_running(value: object) -> None:
    status = to_status(value)
    assert status.state in (P.UNKNOWN, P.CRASHED)
    assert status.state is (P.CRASHED if str(value).endswith("Critical") else P.UNKNOWN)
