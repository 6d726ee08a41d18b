"""The error tree: builtin bases, pickling, context in messages, closed connections."""

from __future__ import annotations

import builtins
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import VM, Connection, ConnectionError, InvalidStateError, NotFoundError, PowerState

VMFactory = Callable[..., VM]


def test_errors_carry_context_and_pickle(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("er")
    with pytest.raises(InvalidStateError) as caught:
        vm.pause() if vm.capabilities().supports(polyvisor.Feature.PAUSE) else vm.shutdown()
    error = caught.value
    assert error.state is PowerState.STOPPED
    assert vm.seen_name in str(error)
    assert vm.connection.host in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.state is error.state


def test_native_errors_are_chained(polyvisor_connection: Connection) -> None:
    with pytest.raises(NotFoundError) as caught:
        polyvisor_connection.backend.lookup("pvconf-no-such-vm")
    assert isinstance(caught.value, LookupError)


def test_closed_connection_raises_connection_error(
    polyvisor_uri: str, polyvisor_connect_options: dict[str, Any]
) -> None:
    conn = polyvisor.connect(polyvisor_uri, **polyvisor_connect_options)
    conn.close()
    conn.close()
    assert conn.closed
    with pytest.raises(ConnectionError) as caught:
        conn.list()
    assert isinstance(caught.value, builtins.ConnectionError)


def test_credentials_never_shown(polyvisor_connection: Connection, polyvisor_connect_options: dict[str, Any]) -> None:
    password = polyvisor_connect_options.get("password")
    texts = [repr(polyvisor_connection), str(polyvisor_connection.uri), repr(polyvisor_connection.uri)]
    if isinstance(password, str) and password:
        assert not any(password in text for text in texts)
    assert all("***" in text or polyvisor_connection.uri.password is None for text in texts)
