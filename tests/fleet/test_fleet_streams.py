"""Event streams opened through a fleet's pooled connections outlive the pool dropping that connection.

The pool stops reusing a connection that reported ConnectionLostError; a stream a caller opened on it keeps
reconnecting as streams do, and the connection is closed once the last such stream is, or with the fleet. A real
libvirtd restarted under such a stream: plugins/polyvisor-libvirt/tests/test_reconnect.py.
"""

from __future__ import annotations

import asyncio

import polyvisor
import polyvisor.aio
from polyvisor import EventKind, EventStream
from polyvisor.errors import ConnectionLostError


def _lose(conn: polyvisor.Connection) -> None:
    raise ConnectionLostError("the link dropped", host=conn.host)


def test_a_stream_outlives_the_pool_dropping_its_connection(host_name: str) -> None:
    with polyvisor.Fleet({"a": f"memory:///{host_name}"}) as fleet:
        first = fleet.connection("a")
        stream: EventStream = fleet.map(lambda conn: conn.watch()).values["a"]
        assert isinstance(fleet.map(_lose).errors["a"], ConnectionLostError)
        again = fleet.connection("a")
        assert again is not first, "the pool opens a new connection"
        assert not stream.closed, "the stream opened on the dropped connection goes on"
        assert not first.closed
        again.create({"name": "seen"})
        event = stream.get(timeout=5)
        assert event is not None
        assert (event.kind, event.name) == (EventKind.DEFINED, "seen")
        stream.close()
        assert first.closed, "the dropped connection closes with its last stream"
        assert not again.closed


def test_closing_the_fleet_closes_streams_on_dropped_connections(host_name: str) -> None:
    fleet = polyvisor.Fleet({"a": f"memory:///{host_name}"})
    first = fleet.connection("a")
    stream: EventStream = fleet.map(lambda conn: conn.watch()).values["a"]
    fleet.map(_lose)
    fleet.close()
    assert first.closed
    assert stream.closed
    assert stream.get(timeout=0) is None


def test_a_dropped_connection_without_streams_is_closed_at_once(host_name: str) -> None:
    with polyvisor.Fleet({"a": f"memory:///{host_name}"}) as fleet:
        first = fleet.connection("a")
        with first.watch():
            pass
        fleet.map(_lose)
        polyvisor.testing.eventually(lambda: first.closed, timeout=5, what="the dropped connection to close")


def test_an_asyncio_stream_outlives_the_async_fleet_dropping_its_connection(host_name: str) -> None:
    async def lose(conn: polyvisor.aio.AsyncConnection) -> None:
        raise ConnectionLostError("the link dropped", host=conn.host)

    async def main() -> None:
        async with polyvisor.aio.AsyncFleet({"a": f"memory:///{host_name}"}) as fleet:
            first = await fleet.connection("a")
            stream = first.events()
            await stream.get(timeout=0)  # subscribed
            assert isinstance((await fleet.map(lose)).errors["a"], ConnectionLostError)
            again = await fleet.connection("a")
            assert again is not first
            assert not first.closed, "the dropped connection stays open for its stream"
            await again.create({"name": "seen"})
            event = await stream.get(timeout=5)
            assert event is not None
            assert (event.kind, event.name) == (EventKind.DEFINED, "seen")
        assert first.closed, "closing the fleet closes the dropped connection"
        assert stream.closed

    asyncio.run(main())
