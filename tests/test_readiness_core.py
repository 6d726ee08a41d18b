"""The readiness wait the core runs for every backend: its sources, its rounds, its answers and its errors.

The backend's source is ``memory://``'s modelled cloud-init, driven by a :class:`FakeTime` that is both the
connection's clock and the memory host's: each poll's sleep advances it at once. The ``ssh`` source knocks at
real sockets on 127.0.0.1 (:class:`Greeter`), which answer at once, so only their timeouts take real time.
"""

from __future__ import annotations

import builtins
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

import polyvisor
from polyvisor import (
    VM,
    Connection,
    Feature,
    InvalidStateError,
    Readiness,
    ReadyAnswer,
    TimeoutError,
    UnsupportedError,
    ValidationError,
)
from polyvisor.provisioning.readiness import banner_complete, endpoint, explain_ready, ssh_answer
from polyvisor.testing.faults import calls
from polyvisor.testing.memory import (
    ADDRESS_DELAY_LABEL,
    ADDRESS_LABEL,
    READY_DELAY_LABEL,
    READY_ERROR,
    READY_LABEL,
    host_named,
)


class FakeTime:
    """A :class:`polyvisor.backend.Clock` whose ``sleep`` advances the clock instead of blocking."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(mem: Connection, host_name: str) -> Iterator[FakeTime]:
    """Fake time for the connection's waits and the memory host's guests."""
    fake = FakeTime()
    host = host_named(host_name)
    saved, host.clock = host.clock, fake.monotonic
    mem.clock = fake
    yield fake
    host.clock = saved


class Greeter:
    """A TCP server on 127.0.0.1 that sends ``greeting`` to each connection and closes it (None: stays silent)."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            with conn:
                if self.greeting is None:
                    conn.settimeout(10)
                    with contextlib.suppress(OSError):
                        self.received.append(conn.recv(100))  # silent: wait for the client to give up
                    continue
                conn.sendall(self.greeting)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread (Linux)
        self.server.close()
        self._thread.join(5)


@pytest.fixture
def greeter() -> Iterator[Callable[[bytes | None], Greeter]]:
    made: list[Greeter] = []

    def make(greeting: bytes | None) -> Greeter:
        made.append(Greeter(greeting))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _running(conn: Connection, name: str = "guest", **labels: str) -> VM:
    vm = conn.create({"name": name, "nics": [{}], "labels": labels, "memory_mib": 128})
    vm.start()
    return vm


# -- cloud-init through the agent --------------------------------------------------------------------------------
def test_an_address_comes_before_readiness(mem: Connection, clock: FakeTime) -> None:
    vm = _running(mem, **{ADDRESS_DELAY_LABEL: "2.5", READY_DELAY_LABEL: "20"})
    began = clock.now
    vm.wait_for_address(timeout=60)
    assert clock.now - began < 5
    ready = vm.wait_until_ready(timeout=60)
    assert ready.sources == ("cloud-init",)
    assert ready.answers == (ReadyAnswer("cloud-init", True, "done"),)
    assert ready.errors == ()
    assert 22.5 <= clock.now - began <= 22.5 + 2.0
    assert max(clock.slept) <= 2.0, "polls are capped"
    assert str(ready) == "cloud-init: done"


def test_a_ready_guest_returns_at_once(mem: Connection, clock: FakeTime) -> None:
    vm = _running(mem)
    ready = vm.wait_until_ready(timeout=0)
    assert ready == Readiness((ReadyAnswer("cloud-init", True, "done"),), 0.0)
    assert clock.slept == []


def test_a_timeout_says_what_each_source_answered(mem: Connection, clock: FakeTime, greeter: Callable) -> None:
    vm = _running(mem, **{READY_LABEL: "never"})
    refused = _free_port()
    began = clock.now
    with pytest.raises(TimeoutError) as caught:
        vm.wait_until_ready(timeout=5, sources=["cloud-init", "ssh"], ssh_host="127.0.0.1", ssh_port=refused)
    assert 5 <= clock.now - began <= 5 + 2.0
    message = str(caught.value)
    assert "timed out after 5s waiting for 'guest' to be ready; asked cloud-init, ssh: " in message
    assert "cloud-init: not ready (running: no /run/cloud-init/result.json yet)" in message
    assert f"ssh: not ready (127.0.0.1:{refused}: connection refused (nothing listens there yet))" in message
    assert caught.value.vm == "guest"
    assert isinstance(caught.value, builtins.TimeoutError)


def test_an_agent_that_never_connects_is_named(mem: Connection, clock: FakeTime) -> None:
    vm = _running(mem, **{ADDRESS_LABEL: "none"})
    with pytest.raises(TimeoutError, match=r"asked cloud-init: cloud-init: not ready \(agent not connected\)"):
        vm.wait_until_ready(timeout=1)


def test_a_guest_that_finished_with_errors_is_ready_and_says_so(mem: Connection, clock: FakeTime) -> None:
    vm = _running(mem, **{READY_LABEL: "error"})
    ready = vm.wait_until_ready(timeout=10)
    assert ready.errors == (f"cloud-init: {READY_ERROR}",)
    assert ready.answers[0].detail == "done, with 1 error"


def test_every_source_asked_must_be_ready(mem: Connection, clock: FakeTime, greeter: Callable) -> None:
    ssh = greeter(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    vm = _running(mem, **{READY_DELAY_LABEL: "10"})
    began = clock.now
    ready = vm.wait_until_ready(timeout=60, sources=["ssh", "cloud-init"], ssh_host="127.0.0.1", ssh_port=ssh.port)
    assert clock.now - began >= 10, "ssh answered at once, cloud-init only after 10 s"
    assert ready.sources == ("ssh", "cloud-init")
    assert ready.answers[0] == ReadyAnswer(
        "ssh", True, f"127.0.0.1:{ssh.port} answered SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    )


def test_an_ssh_host_adds_ssh_to_the_default_sources(mem: Connection, clock: FakeTime, greeter: Callable) -> None:
    ssh = greeter(b"SSH-2.0-x\r\n")
    vm = _running(mem)
    assert vm.wait_until_ready(ssh_host="127.0.0.1", ssh_port=ssh.port).sources == ("cloud-init", "ssh")


def test_without_an_agent_channel_the_default_falls_back_to_ssh(
    mem: Connection, clock: FakeTime, greeter: Callable
) -> None:
    ssh = greeter(b"SSH-2.0-x\r\n")
    vm = _running(mem, **{READY_LABEL: "no-agent"})
    assert vm.wait_until_ready(timeout=10, ssh_host="127.0.0.1", ssh_port=ssh.port).sources == ("ssh",)
    # Named, a source that can never answer is refused at once, not waited on.
    with pytest.raises(UnsupportedError, match=r"'cloud-init' cannot answer for this VM: agent not configured") as e:
        vm.wait_until_ready(timeout=60, sources=["cloud-init"])
    assert "sources=['ssh']" in str(e.value)
    assert clock.slept == []


# -- the ssh source ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("greeting", "ready", "detail"),
    [
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", True, "answered SSH-2.0-OpenSSH_9.2p1"),
        (b"Welcome\r\nto the host\r\nSSH-2.0-dropbear\r\n", True, "answered SSH-2.0-dropbear"),  # RFC 4253 4.2
        (b"SSH-2.0-noterm", False, "answered 'SSH-2.0-noterm', not an SSH identification line"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", False, "answered 'HTTP/1.1 400 Bad Request', not an SSH"),
        (b"", False, "accepted the connection and closed it without a word"),
    ],
)
def test_the_ssh_source_wants_an_identification_line(
    mem: Connection, clock: FakeTime, greeter: Callable, greeting: bytes, ready: bool, detail: str
) -> None:
    server = greeter(greeting)
    vm = _running(mem)
    kwargs = {"sources": ["ssh"], "ssh_host": "127.0.0.1", "ssh_port": server.port}
    if ready:
        answer = vm.wait_until_ready(timeout=5, **kwargs).answers[0]
        assert detail in answer.detail
        return
    with pytest.raises(TimeoutError) as caught:
        vm.wait_until_ready(timeout=1, **kwargs)
    assert detail in str(caught.value)


def test_a_silent_port_is_given_up_on_within_the_timeout(mem: Connection, greeter: Callable) -> None:
    server = greeter(None)
    vm = _running(mem)
    with pytest.raises(TimeoutError, match=r"127\.0\.0\.1:\d+: no answer in time"):
        vm.wait_until_ready(timeout=0.5, sources=["ssh"], ssh_host="127.0.0.1", ssh_port=server.port)
    assert server.received in ([], [b""]), "the knock sends nothing"


def test_the_ssh_source_knocks_at_the_guests_address_by_default(mem: Connection, clock: FakeTime) -> None:
    vm = _running(mem, **{ADDRESS_LABEL: "none"})
    with pytest.raises(TimeoutError, match=r"ssh: not ready \(no usable guest address to knock at yet \(agent: "):
        vm.wait_until_ready(timeout=1, sources=["ssh"])


# -- what is refused before anything is asked -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout": -1}, "timeout"),
        ({"sources": ["telepathy"]}, "sources"),
        ({"sources": []}, "sources"),
        ({"ssh_port": 0}, "ssh_port"),
        ({"ssh_port": "22"}, "ssh_port"),
        ({"ssh_port": True}, "ssh_port"),
        ({"ssh_host": ""}, "ssh_host"),
        ({"ssh_host": " 127.0.0.1"}, "ssh_host"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(mem: Connection, kwargs: dict, field: str) -> None:
    vm = _running(mem)
    before = len(calls(mem))
    with pytest.raises(ValidationError) as caught:
        vm.wait_until_ready(**kwargs)
    assert caught.value.field == field
    assert calls(mem)[before:] == []


def test_a_vm_that_is_not_running_will_not_become_ready(mem: Connection) -> None:
    vm = mem.create({"name": "off", "memory_mib": 128})
    with pytest.raises(InvalidStateError, match="'off' is stopped, so it will not become ready; start it first"):
        vm.wait_until_ready(timeout=10)


def test_a_backend_without_readiness_or_addresses_is_refused(plugins: polyvisor.Plugins, host_name: str) -> None:
    uri = f"memory:///{host_name}?without=readiness,guest-addresses"
    with polyvisor.connect(uri, plugins=plugins) as conn:
        vm = _running(conn)
        assert not conn.supports(Feature.READINESS)
        with pytest.raises(UnsupportedError, match="'readiness'"):
            vm.wait_until_ready(timeout=1)
        with pytest.raises(UnsupportedError, match="'guest-addresses'"):
            vm.wait_until_ready(timeout=1, sources=["ssh"])


def test_without_the_backends_readiness_ssh_still_works(
    plugins: polyvisor.Plugins, host_name: str, greeter: Callable
) -> None:
    ssh = greeter(b"SSH-2.0-x\r\n")
    with polyvisor.connect(f"memory:///{host_name}?without=readiness", plugins=plugins) as conn:
        vm = _running(conn)
        with pytest.raises(UnsupportedError, match="'readiness'"):
            vm.wait_until_ready(timeout=1, sources=["cloud-init"])
        assert vm.wait_until_ready(timeout=5, ssh_host="127.0.0.1", ssh_port=ssh.port).sources == ("ssh",)


# -- the policy's pieces --------------------------------------------------------------------------------------------
def test_the_policy_pieces() -> None:
    assert endpoint("fe80::1%eth0", 22) == "[fe80::1%eth0]:22"
    assert endpoint("guest.example", 2222) == "guest.example:2222"
    assert not banner_complete(b"SSH-2.0-x")
    assert banner_complete(b"SSH-2.0-x\n")
    assert banner_complete(b"x" * 2048)
    assert ssh_answer("127.0.0.1", 22, b"", "connection refused").detail == "127.0.0.1:22: connection refused"
    assert explain_ready([]) == "no source was asked"
    assert explain_ready([ReadyAnswer("a", True), ReadyAnswer("b", False, "why")]) == "a: ready; b: not ready (why)"
