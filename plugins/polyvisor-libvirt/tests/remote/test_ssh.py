"""qemu+ssh:// (the OpenSSH client) and qemu+libssh:// (libssh in process) to qemu:///system through a real sshd."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from servers import PrivateSshd

import polyvisor
from polyvisor import EventKind, EventStream, Fleet, PowerState, VMSpec
from polyvisor.errors import AuthenticationError, ConnectionError, ConnectionLostError
from polyvisor.model import Event

TRANSPORTS = ("ssh", "libssh")


def _next(
    stream: EventStream,
    wanted: EventKind,
    name: str,
    state: PowerState | None = None,
    *,
    detail: str | None = None,
    timeout: float = 30.0,
) -> Event:
    """The next event of this kind (state, detail) for the VM; libvirt may send several per step."""
    deadline = time.monotonic() + timeout
    while True:
        event = stream.get(timeout=max(deadline - time.monotonic(), 0.0))
        assert event is not None, f"no {wanted.value} event ({state}, {detail}) for {name} within {timeout}s"
        if (
            event.kind is wanted
            and event.name == name
            and (state is None or event.state is state)
            and (detail is None or event.detail == detail)
        ):
            return event


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_lists_the_system_daemon_through_sshd(sshd: PrivateSshd, transport: str, vm_name: str) -> None:
    with polyvisor.connect("qemu:///system") as local:
        made = local.create(VMSpec(name=vm_name, memory_mib=64))  # a VM of this test's own on the far side
    with polyvisor.connect(sshd.uri(transport)) as conn:
        assert conn.host_info().hypervisor == "libvirt/QEMU"
        assert made.uuid in {vm.uuid for vm in conn.list()}
        assert conn.vm(vm_name).status().state is PowerState.STOPPED
        assert conn.uri.host == "127.0.0.1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_vm_lives_its_life_over_ssh_and_each_step_is_an_event(
    sshd: PrivateSshd, transport: str, vm_name: str
) -> None:
    with polyvisor.connect(sshd.uri(transport)) as conn, conn.watch() as stream:
        vm = conn.create(VMSpec(name=vm_name, memory_mib=64, labels={"via": transport}))
        assert _next(stream, EventKind.DEFINED, vm_name).uuid == vm.uuid
        vm.start(timeout=60)
        _next(stream, EventKind.STATE, vm_name, PowerState.RUNNING)
        vm.pause(timeout=30)
        _next(stream, EventKind.STATE, vm_name, PowerState.PAUSED)
        vm.resume(timeout=30)
        _next(stream, EventKind.STATE, vm_name, PowerState.RUNNING)
        vm.stop(timeout=30)
        _next(stream, EventKind.STATE, vm_name, detail="stopped")
        assert vm.status().state is PowerState.STOPPED
        assert dict(vm.info().labels) == {"via": transport}
        vm.delete(timeout=30)
        assert _next(stream, EventKind.UNDEFINED, vm_name).uuid == vm.uuid
        assert vm_name not in {info.name for info in conn.list()}


def test_a_fleet_of_ssh_hosts_answers_host_by_host(sshd: PrivateSshd, vm_name: str) -> None:
    # Three names for the same sshd: three pooled connections, three SSH sessions.
    hosts = {name: sshd.uri("ssh") for name in ("kvm-a", "kvm-b", "kvm-c")}
    with Fleet(hosts, timeout=60) as fleet:
        fleet.connection("kvm-b").create(VMSpec(name=vm_name, memory_mib=64, labels={"fleet": "ssh"}))
        listing = fleet.list()
        assert listing.ok, listing.errors
        for host in hosts:
            assert vm_name in {vm.name for vm in listing[host].value}, host
        deleted = fleet.act(fleet.select(labels={"fleet": "ssh"}, hosts=["kvm-c"]), "delete")
        assert list(deleted.values) == [f"kvm-c/{vm_name}"]
        assert vm_name not in {vm.name for vm in fleet.connection("kvm-a").list()}


@pytest.fixture
def freeze(sshd: PrivateSshd) -> Iterator[Callable[..., None]]:
    """Stop (SIGSTOP) sshd's session processes, and with ``listener=True`` the listening sshd too.

    A stopped process keeps its TCP connections open and answers nothing: a host that hangs, not one that is down.
    Whatever the test stopped is continued when it ends.
    """
    stopped: list[int] = []

    def stop(*, listener: bool = False) -> None:
        assert sshd.process is not None
        pids = [*sshd.sessions(), *([sshd.process.pid] if listener else [])]
        assert pids, "no sshd session process to stop"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)

    yield stop
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


KEEPALIVE = {"keepalive_interval": 1, "keepalive_count": 2}
BOUND = 1 * (2 + 1)  # libvirt closes the connection when `count` probes in a row went unanswered


# Over libssh a keepalive interval under 5 s crashed libvirt 9.0 (a segmentation fault in libvirtmod, reproduced
# 3 times in 3 with a reply stalled behind the next probe), so the short-keepalive tests run over OpenSSH only.
@pytest.mark.parametrize("transport", ["ssh"])
def test_a_host_that_stops_answering_is_lost_within_the_keepalive_bound(
    sshd: PrivateSshd, freeze: Callable[..., None], transport: str
) -> None:
    with polyvisor.connect(sshd.uri(transport), **KEEPALIVE) as conn:
        conn.list()
        freeze(listener=True)
        started = time.monotonic()
        with pytest.raises(ConnectionLostError) as caught:
            conn.backend.list_vms()  # the backend's own answer, before the core's one retry of a read
        took = time.monotonic() - started
        assert BOUND - 1.0 < took < BOUND + 1.5, f"the hung host was noticed after {took:.1f}s (bound {BOUND}s)"
        assert "keepalive" in caught.value.message, caught.value.message


@pytest.mark.parametrize("transport", ["ssh"])
def test_a_watch_reports_the_keepalive_gap_and_goes_on(
    sshd: PrivateSshd, freeze: Callable[..., None], transport: str, vm_name: str
) -> None:
    with polyvisor.connect(sshd.uri(transport), **KEEPALIVE) as conn, conn.watch() as stream:
        freeze()  # this session hangs; the host still accepts new ones
        started = time.monotonic()
        gap = _next(stream, EventKind.GAP, "", timeout=BOUND + 10)
        took = time.monotonic() - started
        assert "keepalive" in gap.detail, gap.detail
        assert took < BOUND + 3.0, f"the gap came after {took:.1f}s (keepalive bound {BOUND}s)"
        conn.create(VMSpec(name=vm_name, memory_mib=64))  # events flow on the new session
        _next(stream, EventKind.DEFINED, vm_name)


# The common failures, each with its fix in the message.


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_host_key_says_how_to_trust_it(sshd: PrivateSshd, transport: str) -> None:
    if transport == "ssh":
        uri = sshd.uri(command=sshd.ssh_command_unknown)
    else:
        uri = sshd.uri("libssh", known_hosts=sshd.empty_known_hosts)
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(uri)
    message = caught.value.message
    assert "host key" in message
    assert "known_hosts" in message
    assert "ssh-keyscan" in message
    assert sshd.empty_known_hosts.read_text() == "", "an unknown key was accepted"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_key_the_host_does_not_know_says_which_key_to_check(sshd: PrivateSshd, transport: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(sshd.uri(transport, keyfile=sshd.other_key))
    assert "refused the SSH key" in caught.value.message
    assert "authorized_keys" in caught.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_host_without_libvirts_tools_says_what_to_install(sshd: PrivateSshd, transport: str) -> None:
    with pytest.raises(ConnectionError) as caught:
        polyvisor.connect(sshd.uri(transport, port=sshd.bare_port))
    assert "virt-ssh-helper" in caught.value.message
    assert "install" in caught.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_wrong_socket_path_says_to_check_it(sshd: PrivateSshd, transport: str) -> None:
    with pytest.raises(ConnectionError) as caught:
        polyvisor.connect(sshd.uri(transport, socket="/run/libvirt/pvtest-no-such-sock"))
    assert "socket=" in caught.value.message


def test_no_sshd_at_the_port_says_so(sshd: PrivateSshd) -> None:
    from servers import free_port

    with pytest.raises(ConnectionError) as caught:
        polyvisor.connect(sshd.uri(port=free_port()))
    assert "nothing accepts SSH connections" in caught.value.message
