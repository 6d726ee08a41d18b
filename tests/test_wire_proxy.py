"""The fault-injecting TCP proxy (polyvisor.testing.wire) against a real TCP echo server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from polyvisor.testing.wire import Fault, FaultyProxy, WireFaults


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # the proxy resets connections: that is its job
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on 127.0.0.1."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _round_trip(port: int, payload: bytes = b"hello", timeout: float = 15.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _reset(port: int) -> bool:
    """Return whether a round trip through the proxy was cut off: reset at connect, on sending or on reading (some
    kernels report a reset after the reply began as an end of file)."""
    try:
        return _round_trip(port) == b""
    except ConnectionResetError:
        return True


def test_without_faults_bytes_pass_untouched(echo: tuple[str, int]) -> None:
    with FaultyProxy(echo, seed=1) as proxy:
        payload = bytes(range(256)) * 1000
        assert _round_trip(proxy.port, payload) == payload
        assert proxy.strikes == []
        assert proxy.connections == 1
        assert proxy.carried == (len(payload), len(payload)), "each way, the bytes it forwarded"


def test_a_seed_draws_the_same_plans_again(echo: tuple[str, int]) -> None:
    faults = WireFaults(reset=0.2, stall=0.2, refuse=0.2, stall_seconds=(0.01, 0.02))
    drawn = []
    for seed in (42, 42, 43):
        with FaultyProxy(echo, seed=seed, faults=faults) as proxy:
            for _ in range(20):
                _reset(proxy.port)
            drawn.append([(s.connection, s.chunk, s.fault, s.stall_seconds) for s in proxy.strikes])
    assert drawn[0] == drawn[1]
    assert drawn[0] != drawn[2]
    assert {fault for _, _, fault, _ in drawn[0]} == set(Fault)


def test_a_reset_connection_fails_on_the_client(echo: tuple[str, int]) -> None:
    with FaultyProxy(echo, seed=3, faults=WireFaults(reset=1.0)) as proxy:
        assert _reset(proxy.port), "a reset connection delivers nothing"
        assert proxy.count(Fault.RESET) == 1


def test_a_refused_connect_is_reset_before_any_byte(echo: tuple[str, int]) -> None:
    with FaultyProxy(echo, seed=3, faults=WireFaults(refuse=1.0)) as proxy:
        assert _reset(proxy.port), "a refused connection delivers nothing"
        assert proxy.count(Fault.REFUSE) == 1


def test_a_stall_holds_the_connection_then_delivers(echo: tuple[str, int]) -> None:
    faults = WireFaults(stall=1.0, stall_seconds=(0.5, 0.5))
    with FaultyProxy(echo, seed=5, faults=faults) as proxy:
        began = time.monotonic()
        assert _round_trip(proxy.port) == b"hello"
        elapsed = time.monotonic() - began
        # Each chunk stalls: the request for 0.5 s, the echo for 0.5 s more.
        assert 1.0 <= elapsed < 2.5, f"two 0.5 s stalls took {elapsed:.2f}s"
        assert [strike.fault for strike in proxy.strikes] == [Fault.STALL, Fault.STALL]


def test_healing_ends_a_stall_at_once(echo: tuple[str, int]) -> None:
    faults = WireFaults(stall=1.0, stall_seconds=(30.0, 30.0))
    with FaultyProxy(echo, seed=5, faults=faults) as proxy:
        threading.Timer(0.5, proxy.heal).start()
        began = time.monotonic()
        assert _round_trip(proxy.port) == b"hello"
        assert time.monotonic() - began < 5.0, "heal() must end a 30 s stall"
        assert _round_trip(proxy.port) == b"hello"
        struck = len(proxy.strikes)
        assert _round_trip(proxy.port) == b"hello"
        assert len(proxy.strikes) == struck, "a healed proxy passes new connections untouched"


def test_refuse_closes_the_listener_until_healed(echo: tuple[str, int]) -> None:
    with FaultyProxy(echo, seed=9) as proxy:
        port = proxy.port
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        proxy.heal()
        assert proxy.port == port
        assert _round_trip(port) == b"hello"


def test_break_starts_failing_again(echo: tuple[str, int]) -> None:
    with FaultyProxy(echo, seed=11, faults=WireFaults(refuse=1.0)) as proxy:
        proxy.heal()
        assert _round_trip(proxy.port) == b"hello"
        proxy.break_()
        assert _reset(proxy.port)


@pytest.mark.parametrize(
    "faults",
    [
        {"reset": 1.5},
        {"reset": 0.6, "stall": 0.6},
        {"stall_seconds": (3.0, 1.0)},
        {"refuse": -0.1},
    ],
)
def test_faults_that_make_no_sense_are_refused(faults: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        WireFaults(**faults)  # type: ignore[arg-type]


def test_only_this_machine_is_a_target() -> None:
    with pytest.raises(ValueError, match="only to this machine"):
        FaultyProxy(("192.0.2.1", 80), seed=0)
