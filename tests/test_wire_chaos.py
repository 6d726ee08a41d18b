"""Every call bounded on a wire that fails: four threads calling through a fault-injecting proxy
(:mod:`polyvisor.testing.wire`) that resets connections, stalls them 1-10 s and refuses connects.

Targets: the loopback Hyper-V host over PSRP and over the WinRM shell, and a private libvirtd of this test
listening on TCP (``test+tcp://``; its own config, socket directory and port on 127.0.0.1, no auth, no stateful
driver, serving libvirt's test driver; the system libvirtd is never touched).

Each run asserts: every call returned or raised within its timeout + 1 s; every error was a polyvisor error; no
acknowledged label write was lost; once the proxy heals, the same connection answers a listing, a status read and
a label update. The run's seed is printed on failure: ``POLYVISOR_WIRE_SEED=<seed>`` replays the proxy's faults
and the threads' choices.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor import VM, Connection, PolyvisorError, VMSpec
from polyvisor.testing import eventually
from polyvisor.testing.components import unavailable
from polyvisor.testing.wire import Fault, FaultyProxy, WireFaults

CHAOS_SECONDS = 10.0
"""How long the four threads call through the failing wire, per target (three targets: under a minute in all)."""
THREADS = 4
GRACE = 1.0
"""What the contract allows past a call's timeout."""
TIMEOUTS = (2.0, 3.0, 6.0)
FAULTS = WireFaults(reset=0.01, stall=0.01, refuse=0.05, stall_seconds=(1.0, 10.0))
USER = "hv-admin"
PASSWORD = "Loopback-Pa55!"


def _seed() -> int:
    configured = os.environ.get("POLYVISOR_WIRE_SEED")
    return int(configured) if configured else random.randrange(2**31)


@dataclass
class Ledger:
    """What the threads did: calls, errors, violations, and the label writes each thread made."""

    seed: int
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    slowest: float = 0.0
    acked: dict[str, int] = field(default_factory=dict)
    """Per thread's key, the value of its last acknowledged write."""
    unknown: dict[str, list[int]] = field(default_factory=dict)
    """Per thread's key, the values written since then whose outcome is unknown (they raised)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, timeout: float, elapsed: float, error: BaseException | None) -> None:
        with self.lock:
            self.calls += 1
            self.slowest = max(self.slowest, elapsed - timeout)
            if elapsed > timeout + GRACE:
                self.violations.append(f"{what}(timeout={timeout:g}) took {elapsed:.2f}s")
            if error is None:
                return
            name = type(error).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
            if not isinstance(error, PolyvisorError):
                self.violations.append(
                    f"{what} raised a non-polyvisor {name}: {''.join(traceback.format_exception(error))}"
                )


def _call(kind: str, conn: Connection, vm: VM, labels: dict[str, str], timeout: float) -> object:
    if kind == "status":
        return vm.status(timeout=timeout)
    if kind == "list":
        return conn.list(timeout=timeout)
    if kind == "labels":
        return vm.update_labels(labels, timeout=timeout)
    if kind == "pause":
        return vm.pause(timeout=timeout)
    return vm.resume(timeout=timeout)


def _caller(conn: Connection, vm: VM, ledger: Ledger, index: int, until: float) -> None:
    choices = random.Random(ledger.seed * 31 + index)
    key = f"t{index}"
    written = 0
    while time.monotonic() < until:
        timeout = choices.choice(TIMEOUTS)
        kind = choices.choice(("status", "list", "labels", "labels", "pause", "resume"))
        if kind == "labels":
            written += 1
        began = time.monotonic()
        error: BaseException | None = None
        try:
            _call(kind, conn, vm, {key: str(written)}, timeout)
        except BaseException as failed:  # judged by the ledger
            error = failed
        ledger.record(kind, timeout, time.monotonic() - began, error)
        if kind == "labels":
            with ledger.lock:
                if error is None:
                    ledger.acked[key] = written
                    ledger.unknown[key] = []
                else:
                    ledger.unknown.setdefault(key, []).append(written)


def _chaos(conn: Connection, vm: VM, proxy: FaultyProxy, seed: int) -> Ledger:
    """Call from four threads through the failing proxy, heal it, and check the connection and the labels."""
    ledger = Ledger(seed)
    proxy.break_(FAULTS)
    until = time.monotonic() + CHAOS_SECONDS
    threads = [
        threading.Thread(target=_caller, args=(conn, vm, ledger, index, until), name=f"chaos-{index}")
        for index in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CHAOS_SECONDS + max(TIMEOUTS) + 10)
        assert not thread.is_alive(), f"a caller hung (seed {seed})"
    proxy.heal()
    # The same connection, healed: reads and a write work again. A session the outage broke may fail the first
    # request after it (the next one reopens it), so allow a few seconds.
    last: list[PolyvisorError] = []
    try:
        eventually(lambda: _healthy(conn, vm, last), timeout=20, interval=0.2, what="the connection to heal")
    except AssertionError as error:
        raise AssertionError(f"{error}; last error: {last[-1:]!r} (seed {seed})") from None
    labels = vm.labels(timeout=10)
    for index in range(THREADS):
        key = f"t{index}"
        if key not in ledger.acked:
            continue
        allowed = {str(ledger.acked[key]), *(str(value) for value in ledger.unknown.get(key, []))}
        if labels.get(key) not in allowed:
            ledger.violations.append(
                f"acknowledged write lost: {key} is {labels.get(key)!r}, expected one of {sorted(allowed)}"
            )
    return ledger


def _healthy(conn: Connection, vm: VM, errors: list[PolyvisorError]) -> bool:
    try:
        conn.list(timeout=5)
        vm.status(timeout=5)
        vm.update_labels({"healed": "yes"}, timeout=5)
    except PolyvisorError as error:
        errors.append(error)
        return False
    return True


def _judge(ledger: Ledger, proxy: FaultyProxy, target: str) -> None:
    summary = (
        f"{target}: {ledger.calls} calls, errors {ledger.errors}, slowest {ledger.slowest:+.2f}s past its timeout; "
        f"proxy: {proxy.connections} connections, {proxy.count(Fault.RESET)} resets, "
        f"{proxy.count(Fault.STALL)} stalls, {proxy.count(Fault.REFUSE)} refusals"
    )
    print(summary)
    assert not ledger.violations, (
        f"{len(ledger.violations)} violations; replay with POLYVISOR_WIRE_SEED={ledger.seed}\n{summary}\n"
        + "\n".join(ledger.violations[:10])
    )
    assert ledger.calls >= THREADS * 2, f"too few calls to judge ({summary})"
    assert proxy.count(Fault.RESET) + proxy.count(Fault.STALL) > 0, f"the wire never failed ({summary})"


# -- Hyper-V ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hyperv_host() -> Iterator[Any]:
    """A loopback Hyper-V host of this module's own, on plain HTTP (NTLM with message encryption)."""
    try:
        from polyvisor_hyperv_loopback import LoopbackHost
    except ImportError as error:  # pragma: no cover - depends on the environment
        unavailable(f"the loopback Hyper-V host is not installed: {error}")
        raise
    host = LoopbackHost(USER, PASSWORD).start()
    try:
        yield host
    finally:
        host.close()


@pytest.mark.loopback
@pytest.mark.parametrize("transport", ["psrp", "winrm"])
def test_hyperv_calls_stay_bounded_on_a_failing_wire(hyperv_host: Any, transport: str) -> None:
    seed = _seed()
    with FaultyProxy(("127.0.0.1", hyperv_host.port), seed=seed) as proxy:
        uri = (
            f"hyperv://{USER}@127.0.0.1:{proxy.port}/?transport={transport}&scheme=http"
            "&operation_timeout=5&read_timeout=8&connect_timeout=4"
        )
        with polyvisor.connect(uri, password=PASSWORD) as conn:
            vm = conn.create(VMSpec(name=f"pvtest-wire-{transport}-{seed}"))
            try:
                vm.start(timeout=30)
                ledger = _chaos(conn, vm, proxy, seed)
            finally:
                proxy.heal()
                vm.stop(timeout=30)
                vm.delete(timeout=30)
    _judge(ledger, proxy, f"Hyper-V over {transport}")


# -- libvirt ---------------------------------------------------------------------------------------------------------
class TcpLibvirtd:
    """A private libvirtd listening on TCP on 127.0.0.1 (no auth), serving libvirt's test driver."""

    def __init__(self, binary: str, root: Path) -> None:
        self.root = root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (root / "sock").mkdir()
        (root / "drivers").mkdir()  # empty: no stateful driver modules
        config = root / "libvirtd.conf"
        config.write_text(
            f'unix_sock_dir = "{root / "sock"}"\nlisten_tls = 0\nlisten_tcp = 1\nlisten_addr = "127.0.0.1"\n'
            f'tcp_port = "{self.port}"\nauth_tcp = "none"\nauth_unix_ro = "none"\nauth_unix_rw = "none"\n'
            f'unix_sock_rw_perms = "0700"\nlog_outputs = "3:file:{root / "libvirtd.log"}"\n'
        )
        with (root / "stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                [binary, "--listen", "--config", str(config), "--pid-file", str(root / "libvirtd.pid")],
                env={**os.environ, "LIBVIRT_DRIVER_DIR": str(root / "drivers")},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def answers(self) -> bool:
        import libvirt

        if self.process.poll() is not None:
            pytest.fail(f"libvirtd exited at start: {(self.root / 'stderr').read_text()[-2000:]}")
        try:
            libvirt.open(f"test+tcp://127.0.0.1:{self.port}/default").close()
        except libvirt.libvirtError:
            return False
        return True

    def direct(self) -> Any:
        """A libvirt connection straight to the daemon (not through any proxy)."""
        import libvirt

        return libvirt.open(f"test+tcp://127.0.0.1:{self.port}/default")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def tcp_libvirtd() -> Iterator[TcpLibvirtd]:
    """A private libvirtd on a TCP port of 127.0.0.1, with its own config (not the system's)."""
    binary = shutil.which("libvirtd") or ("/usr/sbin/libvirtd" if Path("/usr/sbin/libvirtd").exists() else None)
    if binary is None:
        unavailable("libvirtd is not installed (scripts/libvirt-env installs it)")
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="pvw-", dir="/tmp"))  # short: unix socket paths are limited to 108 bytes
    daemon = TcpLibvirtd(binary, root)
    try:
        # Polling a port that is not open yet: there is no event to wait on.
        eventually(daemon.answers, timeout=20, interval=0.05, what=f"libvirtd to answer on port {daemon.port}")
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.libvirtd
def test_libvirt_calls_stay_bounded_on_a_failing_wire(tcp_libvirtd: TcpLibvirtd) -> None:
    seed = _seed()
    with (
        FaultyProxy(("127.0.0.1", tcp_libvirtd.port), seed=seed) as proxy,
        polyvisor.connect(f"test+tcp://127.0.0.1:{proxy.port}/default") as conn,
    ):
        # The daemon's test hypervisor is this test's alone and ends with it: nothing to clean up. It lives while
        # some connection to it is open, so one that bypasses the proxy keeps it across the proxied one's resets.
        keeper = tcp_libvirtd.direct()
        vm = conn.create(VMSpec(name=f"pvtest-wire-{seed}"))
        vm.start(timeout=30)
        try:
            ledger = _chaos(conn, vm, proxy, seed)
        finally:
            keeper.close()
    _judge(ledger, proxy, "libvirt over TCP")
