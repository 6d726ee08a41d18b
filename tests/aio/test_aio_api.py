"""The asyncio face keeps the sync API's shape: a public call added to the sync classes fails here until its
async twin exists, with the same parameters, defaults and (async-mapped) return type.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

import polyvisor
import polyvisor.aio
from polyvisor.aio import AsyncConnection, AsyncEventStream, AsyncVM

PAIRS = [
    (polyvisor.Connection, AsyncConnection),
    (polyvisor.VM, AsyncVM),
    (polyvisor.EventStream, AsyncEventStream),
]

RENAMED = {"watch": "events"}
"""Sync names whose twin has another name (``async for event in conn.events()`` reads better than ``watch``)."""

NOT_COROUTINES = {"supports", "events", "retire"}
"""Twins that stay plain methods: no round trip or wait (``retire`` closes later, in the background), or
(``events``) an object to enter or iterate."""

ASYNC_ONLY = {"to_thread"}
"""Calls only the asyncio face has."""

_TWIN_TYPES = {
    "Connection": "AsyncConnection",
    "VM": "AsyncVM",
    "EventStream": "AsyncEventStream",
    "Console": "AsyncConsole",
}


def _public(cls: type) -> dict[str, Any]:
    return {name: value for name, value in inspect.getmembers(cls) if not name.startswith("_")}


def _async_annotation(annotation: Any) -> str:
    text = str(annotation)
    return re.sub(r"\b(Connection|VM|EventStream|Console)\b", lambda match: _TWIN_TYPES[match.group(1)], text)


@pytest.mark.parametrize(("sync_class", "async_class"), PAIRS, ids=lambda cls: cls.__name__)
def test_every_public_call_has_an_async_twin_with_the_same_signature(sync_class: type, async_class: type) -> None:
    sync_members = _public(sync_class)
    async_members = _public(async_class)
    for name, sync_member in sync_members.items():
        twin_name = RENAMED.get(name, name)
        assert twin_name in async_members, f"{sync_class.__name__}.{name} has no twin in {async_class.__name__}"
        twin = async_members[twin_name]
        if isinstance(sync_member, property):
            assert isinstance(twin, property), f"{async_class.__name__}.{twin_name} should be a property"
            continue
        assert callable(sync_member), name
        if twin_name in NOT_COROUTINES:
            assert not inspect.iscoroutinefunction(twin), f"{async_class.__name__}.{twin_name} should stay plain"
        else:
            assert inspect.iscoroutinefunction(twin), f"{async_class.__name__}.{twin_name} should be a coroutine"
        sync_signature = inspect.signature(sync_member)
        async_signature = inspect.signature(twin)
        sync_parameters = [
            (p.name, p.kind, p.default, _async_annotation(p.annotation)) for p in sync_signature.parameters.values()
        ]
        async_parameters = [(p.name, p.kind, p.default, str(p.annotation)) for p in async_signature.parameters.values()]
        assert async_parameters == sync_parameters, f"{async_class.__name__}.{twin_name} drifted from {name}"
        assert str(async_signature.return_annotation) == _async_annotation(sync_signature.return_annotation), name
        assert twin.__doc__, f"{async_class.__name__}.{twin_name} has no docstring"
    extra = set(async_members) - {RENAMED.get(name, name) for name in sync_members} - ASYNC_ONLY
    assert extra == set(), f"{async_class.__name__} has calls the sync API lacks: {sorted(extra)}"


def test_the_async_handles_carry_the_sync_attributes() -> None:
    with polyvisor.connect("memory:///aio-attributes") as conn:
        vm = conn.create({"name": "attributes", "cpus": 1, "memory_mib": 64})
        attributes = set(vars(vm)) | set(vars(conn))
    public = {name for name in attributes if not name.startswith("_")}
    assert public == {"uri", "connection", "uuid"}, "a new public attribute needs an async twin (and this list)"


def test_connect_takes_the_sync_parameters_plus_workers() -> None:
    sync = inspect.signature(polyvisor.connect).parameters
    asynchronous = inspect.signature(polyvisor.aio.connect).parameters
    assert [name for name in asynchronous if name != "workers"] == list(sync)
    assert asynchronous["workers"].default == polyvisor.aio.DEFAULT_WORKERS


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(polyvisor.aio).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert sorted(public) == sorted(set(polyvisor.aio.__all__) - {"DEFAULT_WORKERS"})
    order = sorted(
        polyvisor.aio.__all__, key=lambda name: (0 if name.isupper() else 1 if name[0].isupper() else 2, name)
    )
    assert polyvisor.aio.__all__ == order
