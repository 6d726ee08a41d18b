"""A real mixed fleet for the fleet tests, started once per session.

Eight hosts: the loopback Hyper-V host over PSRP/HTTPS and, a second one, over the WinRM shell/HTTP; three libvirt
test hypervisors; ``qemu:///system`` (the real libvirtd: listing and lookup only, one stopped VM defined for the
session and deleted after); one dead host (a closed port) and one hanging host (a listener that accepts and never
answers). Two of the test hosts are ``test:///default``, which libvirt shares between every connection of a
process (so they list the same VMs); the third is ``test:///PATH`` of a node file, a private hypervisor. Without
a component the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
from unreachable_hosts import HangingListener, closed_port

import polyvisor
from polyvisor.config import NamedConnection
from polyvisor.testing.components import unavailable

HV_USER = "fleet-admin"
PASSWORD_ENV = f"POLYVISOR_FLEET_TEST_PASSWORD_{uuid.uuid4().hex[:8].upper()}"
HANG_TIMEOUT = 1.5
"""Seconds the hanging host is given: every call that reaches it takes about this long."""
FLEET_TIMEOUT = 30.0
LIVE = ("hv-psrp", "hv-winrm", "t1", "t2", "t3", "kvm")


def missing(what: str, error: BaseException | str) -> NoReturn:
    """Fail under CI=true, else skip: a component of the mixed fleet is not available."""
    unavailable(f"{what} is not available: {error}")


@dataclass
class MixedFleet:
    hosts: dict[str, NamedConnection]
    hang: HangingListener
    kvm_vm: str
    """The stopped VM defined on qemu:///system for the session."""

    def fleet(self, **kwargs: Any) -> polyvisor.Fleet:
        kwargs.setdefault("timeout", FLEET_TIMEOUT)
        return polyvisor.Fleet(self.hosts, **kwargs)


def _loopback(**kwargs: Any) -> Any:
    try:
        from polyvisor_hyperv_loopback import LoopbackHost
    except ImportError as error:
        missing("the loopback Hyper-V host (polyvisor-hyperv-loopback)", error)
    return LoopbackHost(HV_USER, os.environ[PASSWORD_ENV], **kwargs).start()


def _require_libvirt() -> None:
    try:
        import polyvisor_libvirt.backend  # noqa: F401
    except ImportError as error:
        missing("the libvirt backend", error)


NODE_XML = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>
    <mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>4194304</memory>
</node>
"""
"""A libvirt test hypervisor of 4 CPUs and 4 GiB, with no VMs."""


@pytest.fixture(scope="session")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixedFleet]:
    """The eight-host fleet's connection entries and its hanging listener."""
    _require_libvirt()
    node = tmp_path_factory.mktemp("fleet") / "node.xml"
    node.write_text(NODE_XML, encoding="utf-8")
    os.environ[PASSWORD_ENV] = "Fleet-" + secrets.token_urlsafe(12)
    started: list[Any] = []
    hang = HangingListener()
    kvm_vm = f"polyvisor-fleet-{uuid.uuid4().hex[:8]}"
    kvm_uri = "qemu:///system"
    try:
        try:
            https = _loopback(https=True)
            started.append(https)
            http = _loopback()
            started.append(http)
        except Exception as error:
            missing("the loopback Hyper-V host", error)
        try:
            with polyvisor.connect(kvm_uri) as conn:
                conn.create({"name": kvm_vm, "cpus": 1, "memory_mib": 64, "labels": {"fleet": "kvm-only"}})
        except polyvisor.ConnectionError as error:
            missing("libvirtd (qemu:///system; start it with scripts/libvirt-env start)", error)
        hv = {"username": HV_USER, "password_env": PASSWORD_ENV}
        hosts = {
            "hv-psrp": NamedConnection(
                "hv-psrp",
                f"hyperv://127.0.0.1:{https.port}/?transport=psrp",
                options={"ca_path": str(https.ca_path)},
                labels={"site": "lab-a", "os": "windows"},
                **hv,
            ),
            "hv-winrm": NamedConnection(
                "hv-winrm",
                f"hyperv://127.0.0.1:{http.port}/?transport=winrm&scheme=http&auth=ntlm",
                labels={"site": "lab-b", "os": "windows"},
                **hv,
            ),
            "t1": NamedConnection("t1", "test:///default", labels={"site": "lab-a"}),
            "t2": NamedConnection("t2", "test:///default", labels={"site": "lab-b"}),
            "t3": NamedConnection("t3", f"test://{node}", labels={"site": "lab-c"}),
            "kvm": NamedConnection("kvm", kvm_uri, labels={"site": "lab-a"}),
            "dead": NamedConnection("dead", f"hyperv://127.0.0.1:{closed_port()}/?scheme=http", **hv),
            "hang": NamedConnection(
                "hang", f"hyperv://127.0.0.1:{hang.port}/?scheme=http&transport=winrm", timeout=HANG_TIMEOUT, **hv
            ),
        }
        yield MixedFleet(hosts, hang, kvm_vm)
    finally:
        try:
            with polyvisor.connect(kvm_uri) as conn:
                if conn.exists(kvm_vm):
                    conn.vm(kvm_vm).delete()
        except polyvisor.PolyvisorError:
            pass
        for host in started:
            host.close()
        hang.close()
        os.environ.pop(PASSWORD_ENV, None)


@pytest.fixture(scope="module")
def fleet(mixed: MixedFleet) -> Iterator[polyvisor.Fleet]:
    """One fleet over the mixed hosts, shared by a module's tests (its connections stay warm)."""
    with mixed.fleet() as shared:
        yield shared
