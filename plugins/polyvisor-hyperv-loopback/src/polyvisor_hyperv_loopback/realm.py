"""A throw-away Kerberos realm for tests: a real MIT KDC (``krb5kdc``) on 127.0.0.1, its own files and port.

:class:`KerberosRealm` writes a ``krb5.conf`` and a ``kdc.conf`` into a directory of its own, creates the realm's
database with ``kdb5_util``, adds principals with ``kadmin.local`` and exports service keys into a keytab. Nothing
outside that directory is read or written: every MIT tool runs with ``KRB5_CONFIG`` and ``KRB5_KDC_PROFILE``
pointing at the realm's files, and :meth:`KerberosRealm.environment` gives the same variables to a process (or a
test) that should use the realm. The KDC listens on one TCP and UDP port of 127.0.0.1 only.

The tools come from Debian's ``krb5-kdc``, ``krb5-admin-server`` and ``krb5-user``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["KerberosRealm", "KerberosToolsMissing", "offline_krb5_conf"]

_TOOLS = {"krb5kdc": "krb5-kdc", "kdb5_util": "krb5-kdc", "kadmin.local": "krb5-admin-server", "kinit": "krb5-user"}
_SBIN = ("/usr/sbin", "/sbin")
_START_TIMEOUT = 20.0
_POLL_INTERVAL = 0.05

# Name resolution stays off: a test realm must never look for KDCs or host names in DNS.
_OFFLINE_LIBDEFAULTS = """\
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
"""


class KerberosToolsMissing(RuntimeError):
    """An MIT Kerberos program the realm needs is not installed; the message names the Debian package."""


def offline_krb5_conf() -> str:
    """A krb5.conf with no realm and no DNS look-ups: Kerberos attempts fail at once, on this machine."""
    return f"[libdefaults]\n{_OFFLINE_LIBDEFAULTS}"


def _tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise KerberosToolsMissing(f"{name} is not installed; install the Debian package {_TOOLS[name]}")
    return found


def _free_port() -> int:
    # TCP and UDP on the same number; a port free for TCP is, on a test machine, nearly always free for UDP too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KerberosRealm:
    """A realm served by a real MIT KDC on 127.0.0.1; use as a context manager (or :meth:`start`/:meth:`stop`).

    ``hosts`` maps host names to this realm in ``[domain_realm]`` (a service principal ``HTTP/<host>`` lives there).
    """

    def __init__(self, realm: str = "POLYVISOR.TEST", *, hosts: tuple[str, ...] = (), directory: Path | None = None):
        if realm != realm.upper() or not realm or any(ch in realm for ch in " \t\r\n/@\\"):
            raise ValueError(f"{realm!r} is not a realm name (upper case, no spaces, '/' or '@')")
        self.realm = realm
        self._hosts = hosts
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="polyvisor-kdc-")
            directory = Path(self._own_dir.name)
        self.directory = directory
        self.krb5_conf = directory / "krb5.conf"
        self.kdc_conf = directory / "kdc.conf"
        self.keytab = directory / "service.keytab"
        self.port = 0
        self._kdc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = f"127.0.0.1:{self.port}" if self._kdc is not None else "stopped"
        return f"KerberosRealm({self.realm!r}, {state})"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> KerberosRealm:
        """Write the configuration, create the database and start the KDC; return once it answers."""
        if self._kdc is not None:
            return self
        krb5kdc, kdb5_util = _tool("krb5kdc"), _tool("kdb5_util")
        _tool("kadmin.local")
        self.port = _free_port()
        self._write_config()
        # -W: a weak random source is fine for a throw-away database (and does not block on a quiet machine).
        master = os.urandom(16).hex()
        self._run([kdb5_util, "-r", self.realm, "create", "-s", "-W", "-P", master])
        self._kdc = subprocess.Popen(
            [krb5kdc, "-n", "-r", self.realm, "-P", str(self.directory / "krb5kdc.pid")],
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the KDC (the files stay until :meth:`close`)."""
        kdc, self._kdc = self._kdc, None
        if kdc is not None and kdc.poll() is None:
            kdc.terminate()
            try:
                kdc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kdc.kill()
                kdc.wait()
        if kdc is not None and kdc.stderr is not None:
            kdc.stderr.close()

    def close(self) -> None:
        """Stop the KDC and remove the realm's directory if the realm created it."""
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def __enter__(self) -> KerberosRealm:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- principals and tickets -----------------------------------------------------------

    def principal(self, name: str) -> str:
        """``name`` with this realm appended (unless it names one already)."""
        return name if "@" in name else f"{name}@{self.realm}"

    def add_user(self, name: str, password: str, *, max_life: str | None = None) -> str:
        """Add a user principal with ``password`` (and, say, ``max_life="10s"``); return its full name."""
        principal = self.principal(name)
        # +requires_preauth: Active Directory's default (an account without "Do not require Kerberos
        # preauthentication"), so a wrong password is KDC_ERR_PREAUTH_FAILED, as from a domain controller.
        options = ["+requires_preauth", *(["-maxlife", max_life] if max_life else [])]
        # The password goes on stdin (kadmin.local prompts twice): never on a command line.
        self._kadmin(["add_principal", *options, principal], stdin=f"{password}\n{password}\n")
        return principal

    def add_service(self, service: str, host: str) -> str:
        """Add the service principal ``service/host`` with a random key, exported into :attr:`keytab`."""
        principal = self.principal(f"{service}/{host}")
        self._kadmin(["add_principal", "-randkey", principal])
        self._kadmin(["ktadd", "-k", str(self.keytab), principal])
        return principal

    def kinit(self, principal: str, password: str, ccache: Path, *, lifetime: str | None = None) -> None:
        """Get a ticket-granting ticket for ``principal`` into the ticket cache ``ccache`` (``kinit -c``)."""
        options = ["-l", lifetime] if lifetime else []
        self._run([_tool("kinit"), *options, "-c", f"FILE:{ccache}", self.principal(principal)], stdin=password + "\n")

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the realm's ``KRB5_CONFIG`` and ``KRB5_KDC_PROFILE``."""
        env = dict(os.environ if base is None else base)
        env["KRB5_CONFIG"] = str(self.krb5_conf)
        env["KRB5_KDC_PROFILE"] = str(self.kdc_conf)
        return env

    # -- internals ------------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.directory
        domain_realm = "".join(f"    {host} = {self.realm}\n" for host in self._hosts)
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            f"{_OFFLINE_LIBDEFAULTS}"
            # A test that forgets its own cache must not read or replace the user's (/tmp/krb5cc_UID).
            f"    default_ccache_name = FILE:{d}/default.ccache\n"
            f"    default_keytab_name = FILE:{self.keytab}\n"
            "    udp_preference_limit = 1\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        kdc = 127.0.0.1:{self.port}\n"
            "    }\n"
            "[domain_realm]\n"
            f"{domain_realm}",
            encoding="utf-8",
        )
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f"    kdc_listen = 127.0.0.1:{self.port}\n"
            f"    kdc_tcp_listen = 127.0.0.1:{self.port}\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        database_name = {d}/principal\n"
            f"        key_stash_file = {d}/stash\n"
            f"        acl_file = {d}/kadm5.acl\n"
            # kadmind is never started; kadmin.local works on the database directly.
            "        kadmind_listen = 127.0.0.1:0\n"
            "        max_life = 10h\n"
            "        max_renewable_life = 1d\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{d}/kdc.log\n",
            encoding="utf-8",
        )
        (d / "kadm5.acl").write_text("", encoding="utf-8")

    def _kadmin(self, command: list[str], stdin: str = "") -> None:
        self._run([_tool("kadmin.local"), "-r", self.realm, "-q", " ".join(command)], stdin=stdin)

    def _run(self, argv: list[str], stdin: str = "") -> None:
        result = subprocess.run(argv, input=stdin.encode(), env=self.environment(), capture_output=True, timeout=60)
        # kadmin.local reports a failed query on stderr and still exits 0.
        failed = result.returncode != 0 or b"add_principal: " in result.stderr or b"ktadd: " in result.stderr
        if failed:
            # The argv never holds a password (those go on stdin), so it may be quoted.
            raise RuntimeError(f"{Path(argv[0]).name} failed: {result.stderr.decode(errors='replace').strip()}")

    def _wait_listening(self) -> None:
        assert self._kdc is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._kdc.poll() is not None:
                error = self._kdc.stderr.read().decode(errors="replace") if self._kdc.stderr else ""
                log = (
                    (self.directory / "kdc.log").read_text(errors="replace")
                    if (self.directory / "kdc.log").exists()
                    else ""
                )
                raise RuntimeError(f"krb5kdc exited with code {self._kdc.returncode}: {error.strip()} {log.strip()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"krb5kdc did not listen on 127.0.0.1:{self.port} within {_START_TIMEOUT:g} s")
            time.sleep(_POLL_INTERVAL)  # another process's socket: there is no event to await
