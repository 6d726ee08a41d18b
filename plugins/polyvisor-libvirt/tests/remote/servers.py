"""The real servers the remote-transport tests talk to, all on 127.0.0.1 and all of this test session's own.

* :class:`PrivateSshd`: OpenSSH's sshd with its own config, port, host key and authorised client key; it logs
  root in (with the key only), whose login may use the system libvirtd. A second port of the same daemon serves a
  "bare host": a PATH without ``virt-ssh-helper`` and ``nc``, as on a host without libvirt's client tools.
* :class:`TestPKI`: a certificate authority, the server's and a client's certificates, in libvirt's file layout
  (``pkipath=``), plus the layouts of a client that trusts the wrong CA and of a client whose certificate another CA
  signed.
* :class:`ListenerDaemon`: a second libvirtd with its own config, sockets, pid file and log, and no driver module
  of its own, listening for TLS and TCP on 127.0.0.1. Having no QEMU driver, it proxies each connection to the
  system libvirtd's socket, named by libvirt's ``name=`` URI parameter (:data:`SYSTEM_NAME`): the tests reach the
  real QEMU driver of ``qemu:///system`` and never reconfigure the shared daemon.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DIGEST_USER",
    "PREFIX",
    "SASL_PASSWORDS",
    "SCRAM_USER",
    "SYSTEM_NAME",
    "ListenerDaemon",
    "MissingComponent",
    "PrivateSshd",
    "TestPKI",
    "free_port",
    "require_binary",
]

SYSTEM_SOCKET = "/run/libvirt/libvirt-sock"
SYSTEM_NAME = f"qemu+unix:///system?socket={SYSTEM_SOCKET}"
"""The URI a listener daemon opens for its clients: the system libvirtd, through its socket."""

START_TIMEOUT = 20.0

PREFIX = "pvtest-remote-"
"""What the remote tests name the VMs they make on qemu:///system."""
SCRAM_USER = "pvscram"
DIGEST_USER = "pvdigest"
SASL_PASSWORDS = {SCRAM_USER: "Scram-Pa55-only-in-tests", DIGEST_USER: "Digest-Pa55-only-in-tests"}
"""The SASL accounts of the listening daemons (test-only secrets)."""


class MissingComponent(Exception):
    """A binary the servers need is not installed (the caller fails under CI=true, skips elsewhere)."""


def require_binary(name: str, *candidates: str) -> str:
    """The path of an installed binary, or MissingComponent naming the package script that installs it."""
    found = shutil.which(name) or next((path for path in candidates if Path(path).is_file()), None)
    if found is None:
        raise MissingComponent(f"{name} is not installed (scripts/bootstrap installs it)")
    return found


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    # The daemon is ready once its port accepts; there is nothing else to wait on.
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g} s")


def _die_with_the_tests() -> None:
    """In the server's child before exec: end with the test process, also when it dies without cleaning up."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _children(pid: int) -> Iterator[int]:
    """Every descendant of ``pid``, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    pending = list(parents.get(pid, ()))
    while pending:
        child = pending.pop()
        yield child
        pending.extend(parents.get(child, ()))


class PrivateSshd:
    """OpenSSH's sshd on two ports of 127.0.0.1: a libvirt host, and a bare host without libvirt's tools."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.binary = require_binary("sshd", "/usr/sbin/sshd")
        keygen = require_binary("ssh-keygen")
        self.port = free_port()
        self.bare_port = free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self.key = root / "id_ed25519"  # the client's key, authorised
        self.other_key = root / "id_other"  # a key the host does not know
        for path in (self.host_key, self.key, self.other_key):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
        authorized = root / "authorized_keys"
        authorized.write_text(self.key.with_suffix(".pub").read_text())
        # What `ssh-keyscan` (or accepting the key at a first login) writes: this host's key under "[host]:port".
        host_key = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key}\n[127.0.0.1]:{self.bare_port} {host_key}\n")
        self.empty_known_hosts = root / "known_hosts.empty"
        self.empty_known_hosts.write_text("")
        bare = root / "bare-bin"  # a shell and `which`, nothing of libvirt's and no nc
        bare.mkdir()
        for tool in ("sh", "which"):
            (bare / tool).symlink_to(require_binary(tool))
        self.log = root / "sshd.log"
        self.config = root / "sshd_config"
        self.config.write_text(
            textwrap.dedent(
                f"""\
                ListenAddress 127.0.0.1:{self.port}
                ListenAddress 127.0.0.1:{self.bare_port}
                HostKey {self.host_key}
                PidFile {root / "sshd.pid"}
                AuthorizedKeysFile {authorized}
                AuthenticationMethods publickey
                PubkeyAuthentication yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin prohibit-password
                AllowUsers root
                UsePAM no
                # The test's files live under /tmp, which is world-writable: sshd's ownership check would refuse.
                StrictModes no
                PrintMotd no
                LogLevel VERBOSE
                Match LocalPort {self.bare_port}
                    SetEnv PATH={bare}
                """
            )
        )
        # The OpenSSH client reads only ~/.ssh and /etc/ssh: `command=` of the URI names this wrapper, which
        # gives ssh the test's own config (its known_hosts, strict checking), as a user's ~/.ssh/config would.
        self.client_config = root / "ssh_config"
        self.client_config.write_text(self._client_config(self.known_hosts))
        self.ssh_command = self._wrapper("ssh", self.client_config)
        self.ssh_command_unknown = self._wrapper("ssh-unknown", root / "ssh_config.unknown")
        (root / "ssh_config.unknown").write_text(self._client_config(self.empty_known_hosts))
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _client_config(known_hosts: Path) -> str:
        return (
            f"Host *\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  IdentitiesOnly yes\n  ConnectTimeout 5\n"
        )

    def _wrapper(self, name: str, config: Path) -> Path:
        ssh = require_binary("ssh")
        wrapper = self.root / name
        wrapper.write_text(f'#!/bin/sh\nexec {ssh} -F {config} "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def start(self) -> None:
        # sshd's privilege separation needs this directory; Debian's service script makes it at boot.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-D", "-e", "-f", str(self.config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_the_tests,
            )
        _wait_listening(self.port, self.process, self.log, "sshd")
        _wait_listening(self.bare_port, self.process, self.log, "sshd")

    def stop(self) -> None:
        if self.process is not None:
            for pid in list(_children(self.process.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)  # a stopped session must see its SIGTERM
                    os.kill(pid, signal.SIGTERM)
        _stop(self.process)
        self.process = None

    def sessions(self) -> list[int]:
        """The sshd processes serving open sessions (children of the listening daemon)."""
        assert self.process is not None
        return [pid for pid in _children(self.process.pid) if _comm(pid) == "sshd"]

    def uri(self, transport: str = "ssh", *, port: int | None = None, **params: str | Path) -> str:
        """A ``qemu+ssh://`` or ``qemu+libssh://`` URI of the system libvirtd through this sshd."""
        if transport == "ssh":
            query = {"keyfile": self.key, "command": self.ssh_command, **params}
        else:
            query = {"keyfile": self.key, "known_hosts": self.known_hosts, "sshauth": "privkey", **params}
        text = "&".join(f"{name}={value}" for name, value in query.items())
        return f"qemu+{transport}://root@127.0.0.1:{port or self.port}/system?{text}"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


_VALIDITY = datetime.timedelta(days=7)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "polyvisor remote tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    # libvirt refuses a CA without keyCertSign, and a peer certificate without digitalSignature/keyEncipherment.
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class _Authority:
    def __init__(self, common_name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, common_name: str, *, server: bool) -> tuple[bytes, bytes]:
        """A certificate and its key (PEM) for 127.0.0.1 (server) or a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), pem_key

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


class TestPKI:
    """A test CA with a server and a client certificate, in libvirt's ``pkipath`` layout."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, root: Path) -> None:
        ca = _Authority("polyvisor remote tests CA")
        rogue = _Authority("another CA")
        self.server = self._layout(root / "server", ca.pem, *ca.issue("127.0.0.1", server=True), "server")
        self.client = self._layout(root / "client", ca.pem, *ca.issue("polyvisor-test-client", server=False), "client")
        stranger = rogue.issue("polyvisor-test-client", server=False)
        self.wrong_ca = self._layout(root / "wrong-ca", rogue.pem, *stranger, "client")
        """A client of another CA: it cannot verify the server's certificate."""
        self.rogue_client = self._layout(root / "rogue-client", ca.pem + rogue.pem, *stranger, "client")
        """A client that trusts the server's CA but whose certificate another CA signed: the server refuses it."""
        self.mismatched = self._layout(root / "mismatched", rogue.pem, *ca.issue("mismatched", server=False), "client")
        """A client whose own certificate is not signed by the CA it trusts: libvirt refuses before connecting."""

    @staticmethod
    def _layout(directory: Path, ca: bytes, cert: bytes, key: bytes, role: str) -> Path:
        directory.mkdir(parents=True)
        (directory / "cacert.pem").write_bytes(ca)
        (directory / f"{role}cert.pem").write_bytes(cert)
        (directory / f"{role}key.pem").write_bytes(key)
        (directory / f"{role}key.pem").chmod(0o600)
        return directory


class ListenerDaemon:
    """A private libvirtd listening on 127.0.0.1 for TLS and TCP, proxying to the system libvirtd."""

    def __init__(
        self,
        root: Path,
        pki: TestPKI,
        *,
        auth_tls: str,
        auth_tcp: str,
        sasl_mechanisms: str,
        sasl_users: dict[str, str],
    ) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.binary = require_binary("libvirtd", "/usr/sbin/libvirtd")
        saslpasswd = require_binary("saslpasswd2", "/usr/sbin/saslpasswd2")
        self.tls_port = free_port()
        self.tcp_port = free_port()
        self.pki = pki
        self.log = root / "libvirtd.log"
        self.drivers = root / "drivers"  # empty: no driver module, so every URI goes to the remote driver
        self.drivers.mkdir()
        (root / "sock").mkdir()
        self.sasl = root / "sasl"  # SASL_CONF_PATH: this daemon's own "libvirt" SASL service
        self.sasl.mkdir()
        database = self.sasl / "passwd.db"
        (self.sasl / "libvirt.conf").write_text(f"mech_list: {sasl_mechanisms}\nsasldb_path: {database}\n")
        for user, password in sasl_users.items():
            subprocess.run(
                [saslpasswd, "-f", str(database), "-a", "libvirt", "-p", "-c", user],
                input=password.encode(),
                check=True,
            )
        self.config = root / "libvirtd.conf"
        self.config.write_text(
            textwrap.dedent(
                f"""\
                listen_addr = "127.0.0.1"
                listen_tls = 1
                tls_port = "{self.tls_port}"
                listen_tcp = 1
                tcp_port = "{self.tcp_port}"
                auth_tls = "{auth_tls}"
                auth_tcp = "{auth_tcp}"
                ca_file = "{pki.server / "cacert.pem"}"
                cert_file = "{pki.server / "servercert.pem"}"
                key_file = "{pki.server / "serverkey.pem"}"
                unix_sock_dir = "{root / "sock"}"
                unix_sock_rw_perms = "0700"
                auth_unix_ro = "none"
                auth_unix_rw = "none"
                log_outputs = "3:file:{self.log}"
                """
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "LIBVIRT_DRIVER_DIR": str(self.drivers), "SASL_CONF_PATH": str(self.sasl)}
        stderr = self.root / "stderr"
        with stderr.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "--listen", "--config", str(self.config), "--pid-file", str(self.root / "pid")],
                env=env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_the_tests,
            )
        _wait_listening(self.tls_port, self.process, stderr, "libvirtd")
        _wait_listening(self.tcp_port, self.process, stderr, "libvirtd")

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def uri(self, transport: str, *, pkipath: Path | None = None) -> str:
        """A ``qemu+tls://`` or ``qemu+tcp://`` URI of the system libvirtd through this listener."""
        params = [f"name={quote(SYSTEM_NAME, safe='')}"]
        if transport == "tls":
            params.insert(0, f"pkipath={pkipath or self.pki.client}")
        port = self.tls_port if transport == "tls" else self.tcp_port
        return f"qemu+{transport}://127.0.0.1:{port}/system?{'&'.join(params)}"
