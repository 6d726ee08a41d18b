"""Reconnecting after libvirtd restarts: a private libvirtd, killed and started again under a live connection.

The daemon is this test's own: its own config (socket directory, no TCP/TLS, no auth), pid file and log, and an
empty driver-module directory, so it loads no stateful driver (QEMU, network, storage) and never touches the
host's libvirt state. It serves libvirt's test driver, reached as ``test+unix:///default?socket=...``; every start
is a fresh test hypervisor. The shared system libvirtd is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import polyvisor
from polyvisor import EventKind, EventStream, VMSpec
from polyvisor.errors import ConnectionLostError
from polyvisor.model import Event
from polyvisor.testing import eventually
from polyvisor.testing.components import unavailable

START_TIMEOUT = 20.0


class PrivateLibvirtd:
    """One libvirtd process of this test, restartable on the same socket."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.socket_dir = root / "sock"
        self.socket = self.socket_dir / "libvirt-sock"
        self.drivers = root / "drivers"  # empty: no stateful driver modules
        self.config = root / "libvirtd.conf"
        self.log = root / "libvirtd.log"
        self.socket_dir.mkdir()
        self.drivers.mkdir()
        self.config.write_text(
            f'unix_sock_dir = "{self.socket_dir}"\n'
            "listen_tls = 0\nlisten_tcp = 0\n"
            'auth_unix_ro = "none"\nauth_unix_rw = "none"\nunix_sock_rw_perms = "0700"\n'
            f'log_outputs = "3:file:{self.log}"\n'
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"test+unix:///default?socket={self.socket}"

    def start(self) -> None:
        env = {**os.environ, "LIBVIRT_DRIVER_DIR": str(self.drivers)}
        with (self.root / "stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "--config", str(self.config), "--pid-file", str(self.root / "libvirtd.pid")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        import libvirt

        process = self.process

        def answers() -> bool:
            # The daemon is ready once it answers on its socket; the socket file appears a little earlier.
            if process.poll() is not None:
                pytest.fail(f"libvirtd exited at start: {(self.root / 'stderr').read_text()[-2000:]}")
            try:
                libvirt.open(self.uri).close()
            except libvirt.libvirtError:
                return False
            return True

        # Polling a socket that does not exist yet: there is no event to wait on.
        eventually(answers, timeout=START_TIMEOUT, interval=0.02, what=f"libvirtd to answer on {self.socket}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture
def libvirtd() -> Iterator[PrivateLibvirtd]:
    """A private libvirtd serving the test driver on its own socket."""
    binary = shutil.which("libvirtd") or ("/usr/sbin/libvirtd" if Path("/usr/sbin/libvirtd").exists() else None)
    if binary is None:
        unavailable("libvirtd is not installed (scripts/libvirt-env installs it)")
    assert binary is not None
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pvd-", dir="/tmp"))
    daemon = PrivateLibvirtd(binary, root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def _next(stream: EventStream, wanted: EventKind, timeout: float = 10.0, name: str | None = None) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        event = stream.get(timeout=max(deadline - time.monotonic(), 0.0))
        assert event is not None, f"no {wanted.value} event within {timeout}s"
        if event.kind is wanted and (name is None or event.name == name):
            return event


def test_reads_retry_transparently_after_libvirtd_restarts(libvirtd: PrivateLibvirtd) -> None:
    with polyvisor.connect(libvirtd.uri) as conn:
        conn.create(VMSpec(name="before"))
        assert {info.name for info in conn.list()} == {"test", "before"}
        libvirtd.kill()
        libvirtd.start()
        # The first call finds the connection dropped; the core retries it once and the backend reconnects.
        # The new daemon is a fresh test hypervisor: only its stock domain exists.
        assert {info.name for info in conn.list()} == {"test"}
        assert conn.host_info().hypervisor == "libvirt/TEST"


def test_a_change_cut_off_by_the_drop_says_its_outcome_is_unknown(libvirtd: PrivateLibvirtd) -> None:
    with polyvisor.connect(libvirtd.uri) as conn:
        # A VM of this test's own: the stock "test" domain has the same UUID in every test hypervisor, and label
        # updates take a per-UUID lock shared by every process on this machine.
        vm = conn.create(VMSpec(name="labelled"))
        libvirtd.kill()
        with pytest.raises(ConnectionLostError) as caught:
            vm.set_labels({"k": "v"})
        assert caught.value.outcome_unknown
        assert "unknown" in caught.value.message
        libvirtd.start()
        # The call after reconnects and works (on a fresh test hypervisor, where that VM is gone).
        vm = conn.create(VMSpec(name="after"))
        assert dict(vm.set_labels({"k": "v"})) == {"k": "v"}


def test_a_watch_reports_a_gap_after_libvirtd_restarts_and_keeps_delivering(libvirtd: PrivateLibvirtd) -> None:
    with polyvisor.connect(libvirtd.uri) as conn, conn.watch() as stream:
        conn.create(VMSpec(name="one"))
        _next(stream, EventKind.DEFINED, name="one")
        libvirtd.kill()
        libvirtd.start()
        gap = _next(stream, EventKind.GAP)
        assert "dropped" in gap.detail
        conn.create(VMSpec(name="two"))  # events flow on the reopened connection
        assert _next(stream, EventKind.DEFINED, name="two").name == "two"


def test_a_watch_without_a_reconnect_window_fails_within_a_second(libvirtd: PrivateLibvirtd) -> None:
    with polyvisor.connect(libvirtd.uri) as conn, conn.watch(reconnect_within=0) as stream:
        libvirtd.kill()
        started = time.monotonic()
        with pytest.raises(ConnectionLostError):
            stream.get(timeout=5)
        # The close callback fires at once; the backend gives the daemon 1 s to come back before failing.
        assert time.monotonic() - started < 2.0


def test_a_watch_outlives_a_restart_longer_than_a_second_and_re_reads_the_vms(libvirtd: PrivateLibvirtd) -> None:
    # The outage measured on a package upgrade: libvirtd down for about 2 s, longer than the backend's own 1 s.
    with polyvisor.connect(libvirtd.uri) as conn, conn.watch() as stream:
        conn.create(VMSpec(name="one"))
        _next(stream, EventKind.DEFINED, name="one")
        libvirtd.kill()
        killed = time.time()
        assert stream.get(timeout=2.5) is None, "the stream waits quietly while libvirtd is down"
        libvirtd.start()
        answering = time.monotonic()
        gap = stream.get(timeout=10)
        back = time.monotonic() - answering
        assert gap is not None
        assert gap.kind is EventKind.GAP, gap
        assert gap.since is not None
        assert gap.until is not None
        assert killed - 0.5 < gap.since.timestamp() < killed + 1.0
        assert gap.until.timestamp() > killed + 2.5
        assert back < 3.0, f"the stream took {back:.2f}s to come back once libvirtd answered"
        # The new daemon is a fresh test hypervisor: "one" is gone, the stock "test" domain runs as before.
        event = stream.get(timeout=5)
        assert event is not None
        assert (event.kind, event.name, event.detail) == (EventKind.UNDEFINED, "one", "re-read after a gap")
        conn.create(VMSpec(name="two"))  # live events flow again
        event = stream.get(timeout=5)
        assert event is not None
        assert (event.kind, event.name) == (EventKind.DEFINED, "two")
        assert event.detail != "re-read after a gap"


def test_a_watch_fails_once_its_reconnect_window_is_over(libvirtd: PrivateLibvirtd) -> None:
    with polyvisor.connect(libvirtd.uri) as conn, conn.watch(reconnect_within=2) as stream:
        libvirtd.kill()
        started = time.monotonic()
        with pytest.raises(ConnectionLostError, match="could not reconnect within 2 s"):
            stream.get(timeout=10)
        took = time.monotonic() - started
        assert 1.9 < took < 3.0, f"failed {took:.2f}s into the outage for a 2 s window"


def test_callers_racing_the_close_callback_never_hang(libvirtd: PrivateLibvirtd) -> None:
    # A reader keeps calling while libvirtd dies and comes back, so reconnects by callers race the close callback
    # and the subscription's own reconnect (libvirt runs close callbacks under a lock a reconnect also takes).
    with polyvisor.connect(libvirtd.uri) as conn, conn.watch() as stream:
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader() -> None:
            while not stop.is_set():
                try:
                    conn.list()
                except polyvisor.ConnectionError:
                    pass  # the daemon is down for a moment: expected
                except BaseException as error:
                    errors.append(error)
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        for _ in range(3):
            libvirtd.kill()
            libvirtd.start()
            _next(stream, EventKind.GAP)
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "a caller hung across a reconnect"
        assert errors == []
        conn.create(VMSpec(name="still-there"))
        assert _next(stream, EventKind.DEFINED, name="still-there").name == "still-there"


def test_a_stream_through_a_fleet_outlives_a_restart_and_the_pool_dropping_its_connection(
    libvirtd: PrivateLibvirtd,
) -> None:
    with polyvisor.Fleet({"kvm": libvirtd.uri}) as fleet:
        first = fleet.connection("kvm")
        vm = first.create(VMSpec(name="labelled"))  # a VM of this test's own (label locks are per UUID)
        stream: EventStream = fleet.map(lambda conn: conn.watch()).values["kvm"]
        libvirtd.kill()
        # A change cut off by the drop reports ConnectionLostError: the pool stops using that connection.
        failed = fleet.map(lambda _conn: vm.set_labels({"k": "v"})).errors["kvm"]
        assert isinstance(failed, ConnectionLostError), failed
        assert stream.get(timeout=1.5) is None
        libvirtd.start()
        gap = stream.get(timeout=10)
        assert gap is not None
        assert gap.kind is EventKind.GAP, gap
        assert not stream.closed, "the stream outlives the pool dropping its connection"
        again = fleet.connection("kvm")
        assert again is not first
        again.create(VMSpec(name="after"))
        assert _next(stream, EventKind.DEFINED, name="after").name == "after"
    assert first.closed, "closing the fleet closes the dropped connection and its stream"
    assert stream.closed
