"""``polyvisor.testing.eventually``: the one poll-until helper of the tests."""

from __future__ import annotations

import re

import pytest

from polyvisor.testing import eventually


class FakeTime:
    """A clock that advances only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_returns_the_first_true_value() -> None:
    answers = iter([None, 0, "", "ready"])
    time = FakeTime()
    assert eventually(lambda: next(answers), timeout=5, clock=time.clock, sleep=time.sleep) == "ready"
    assert time.naps == [0.01, 0.01, 0.01]


def test_fails_after_the_timeout_saying_what_it_awaited() -> None:
    time = FakeTime()
    with pytest.raises(AssertionError) as caught:
        eventually(lambda: False, timeout=0.05, what="the pool to drain", clock=time.clock, sleep=time.sleep)
    message = str(caught.value)
    assert re.fullmatch(
        r"timed out after 0\.05s waiting for the pool to drain: probed \d+ times, last returned False", message
    ), message
    assert time.now == pytest.approx(0.05), "it sleeps no further than the deadline"


def test_a_probe_that_asserts_is_retried_and_its_last_error_is_the_cause() -> None:
    time = FakeTime()
    seen: list[int] = []

    def counted() -> bool:
        seen.append(len(seen))
        assert len(seen) > 100, f"only {len(seen)} calls"
        return True

    with pytest.raises(AssertionError, match="waiting for counted: probed 3 times, last raised only 3 calls") as no:
        eventually(counted, timeout=0.02, clock=time.clock, sleep=time.sleep)
    assert isinstance(no.value.__cause__, AssertionError)


def test_a_zero_timeout_probes_once() -> None:
    with pytest.raises(AssertionError, match="probed once, last returned None"):
        eventually(lambda: None, timeout=0)
    with pytest.raises(ValueError, match="at least 0"):
        eventually(lambda: True, timeout=-1)


def test_other_errors_propagate_at_once() -> None:
    def broken() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        eventually(broken, timeout=60)
