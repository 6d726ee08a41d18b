"""Fixtures: this session's own sshd and listening libvirtd daemons on 127.0.0.1, shared by every remote test.

Each server starts once per session (a few hundred milliseconds each) and is stopped at its end. Behind each is
the system libvirtd's QEMU driver (``qemu:///system``): every VM a test makes is named ``pvtest-remote-...`` and
removed when the test ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyvisor.testing.components import unavailable

sys.path.insert(0, str(Path(__file__).parent))

from servers import (  # the path above makes the sibling module importable
    PREFIX,
    SASL_PASSWORDS,
    ListenerDaemon,
    MissingComponent,
    PrivateSshd,
    TestPKI,
)


def _system_libvirtd() -> None:
    import libvirt

    try:
        libvirt.open("qemu:///system").close()
    except libvirt.libvirtError as error:
        unavailable(f"qemu:///system does not answer (scripts/libvirt-env start): {error}")


@pytest.fixture(scope="session")
def remote_root() -> Iterator[Path]:
    # A short path: libvirtd's unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pvr-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd(remote_root: Path) -> Iterator[PrivateSshd]:
    """OpenSSH's sshd on 127.0.0.1, logging root in by key, in front of the system libvirtd."""
    _system_libvirtd()
    try:
        server = PrivateSshd(remote_root / "ssh")
    except MissingComponent as error:
        unavailable(str(error))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pki(remote_root: Path) -> TestPKI:
    """The test CA, the listener's certificate and the clients' certificates."""
    return TestPKI(remote_root / "pki")


@contextlib.contextmanager
def _daemon(root: Path, pki: TestPKI, **settings: str) -> Iterator[ListenerDaemon]:
    _system_libvirtd()
    try:
        daemon = ListenerDaemon(root, pki, sasl_users=SASL_PASSWORDS, **settings)
    except MissingComponent as error:
        unavailable(str(error))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def tls_daemon(remote_root: Path, pki: TestPKI) -> Iterator[ListenerDaemon]:
    """TLS with client certificates (no other authentication), and TCP with SASL DIGEST-MD5."""
    with _daemon(remote_root / "tls", pki, auth_tls="none", auth_tcp="sasl", sasl_mechanisms="digest-md5") as d:
        yield d


@pytest.fixture(scope="session")
def scram_daemon(remote_root: Path, pki: TestPKI) -> Iterator[ListenerDaemon]:
    """TLS with client certificates and SASL SCRAM-SHA-256, and TCP offering only SCRAM-SHA-256."""
    with _daemon(remote_root / "scram", pki, auth_tls="sasl", auth_tcp="sasl", sasl_mechanisms="scram-sha-256") as d:
        yield d


@pytest.fixture
def vm_name() -> Iterator[str]:
    """A fresh ``pvtest-remote-`` name; whatever has it on qemu:///system is removed after the test."""
    import libvirt

    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    yield name
    conn = libvirt.open("qemu:///system")
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith(name):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    finally:
        conn.close()
