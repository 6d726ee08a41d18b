from __future__ import annotations

import builtins
import pickle

import pytest

import polyvisor.errors as errors
from polyvisor import Feature, PowerState


def test_tree_and_builtin_bases() -> None:
    assert issubclass(errors.AuthenticationError, errors.ConnectionError)
    assert issubclass(errors.ConnectionError, builtins.ConnectionError)
    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.PolyvisorError)


@pytest.mark.parametrize(
    "error",
    [
        errors.PolyvisorError("boom", host="h", vm="v"),
        errors.InvalidStateError("no", state=PowerState.PAUSED, accepted=[PowerState.RUNNING], vm="v"),
        errors.UnsupportedError("no", feature=Feature.SAVE),
        errors.ValidationError("bad", field="cpus"),
        errors.BackendError("native", code="VIR_ERR_X", native_message="m"),
        errors.TimeoutError("slow", host="h"),
        errors.AuthenticationError("denied", host="h"),
    ],
)
def test_errors_pickle_with_their_attributes(error: errors.PolyvisorError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.__dict__ == error.__dict__


def test_message_names_host_and_vm() -> None:
    text = str(errors.NotFoundError("gone", host="hv01", vm="web"))
    assert "hv01" in text
    assert "'web'" in text
    assert str(errors.ValidationError("must be positive", field="cpus")) == "cpus: must be positive"
