"""The error tree: builtin bases, pickling, context in messages, closed connections."""

from __future__ import annotations

import builtins
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import polyvisor
from polyvisor import VM, Connection, ConnectionError, InvalidStateError, NotFoundError, PowerState
from polyvisor.transitions import VERBS

VMFactory = Callable[..., VM]


def _refused_verb(vm: VM, state: PowerState) -> str | None:
    """A verb the VM has (its feature declared, or none needed) that the contract refuses from ``state``: not one
    that accepts it, nor one whose target it is (that verb returns at once, refusing nothing)."""
    caps = vm.capabilities()
    for verb in VERBS.values():
        if (
            (verb.feature is None or caps.supports(verb.feature))
            and not verb.allows(state)
            and verb.target is not state
        ):
            return verb.name
    return None


def test_errors_carry_context_and_pickle(polyvisor_vm_factory: VMFactory) -> None:
    vm = polyvisor_vm_factory("er")
    # A stopped VM refuses pause, reset, reboot; with only the required verbs, a running VM refuses delete.
    state = PowerState.STOPPED
    verb = _refused_verb(vm, state)
    if verb is None:
        state = PowerState.RUNNING
        vm.start()
        verb = _refused_verb(vm, state)
    assert verb is not None, "no verb refuses a running VM: polyvisor.transitions.VERBS no longer refuses delete"
    try:
        getattr(vm, verb)()
    except InvalidStateError as refused:
        error = refused
    else:
        pytest.fail(f"{verb}() on a {state.value} VM returned: the contract refuses it with InvalidStateError")
    assert error.state is state, f"{verb}() from {state.value}"
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
