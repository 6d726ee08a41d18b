"""Why a connection to a remote libvirt host failed to open, and what fixes it: SSH, libssh, TLS and SASL.

libvirt reports these failures with generic codes (``VIR_ERR_SYSTEM_ERROR`` of its RPC layer, ``VIR_ERR_LIBSSH``,
``VIR_ERR_AUTH_FAILED``) around the words of the tool that failed: OpenSSH's stderr, the remote shell's, libssh's,
GnuTLS's or Cyrus SASL's. :func:`explain` recognises their stable texts and names the fix. Every text here was
seen from libvirt 9.0 with OpenSSH 9.2, libssh 0.10 and Cyrus SASL 2.1.28 (the tests in
``plugins/polyvisor-libvirt/tests/remote`` provoke each one against real servers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from polyvisor.uri import URI

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a failure to connect means: an authentication failure (or else a connection failure) and its fix."""

    authentication: bool
    fix: str


@dataclass(frozen=True, slots=True)
class _Rule:
    transports: frozenset[str]
    pattern: re.Pattern[str]
    authentication: bool
    fix: Callable[[URI], str]


_SSH = frozenset({"ssh", "libssh", "libssh2", "ext"})
_NETWORK = frozenset({"tls", "tcp"})
_SASL = frozenset({"tls", "tcp", "ssh", "libssh", "libssh2", "ext", "unix"})


def _where(uri: URI, default_port: int) -> str:
    return f"{uri.host or 'localhost'}:{uri.port or default_port}"


def _known_hosts_file(uri: URI) -> str:
    named = dict(uri.query).get("known_hosts") if uri.transport == "libssh" else None
    return named or "~/.ssh/known_hosts"


def _known_hosts(uri: URI) -> str:
    if uri.transport == "libssh" and "known_hosts" in dict(uri.query):
        return f"the file known_hosts= names ({_known_hosts_file(uri)})"
    return "~/.ssh/known_hosts"


def _keyscan(uri: URI) -> str:
    port = f"-p {uri.port} " if uri.port else ""
    return f"ssh-keyscan {port}{uri.host or 'localhost'} >> {_known_hosts_file(uri)}"


def _skip_check(uri: URI) -> str:
    return "known_hosts_verify=ignore" if uri.transport == "libssh" else "no_verify=1"


def _rule(transports: frozenset[str], pattern: str, *, authentication: bool, fix: Callable[[URI], str]) -> _Rule:
    return _Rule(transports, re.compile(pattern, re.IGNORECASE), authentication, fix)


_RULES = (
    # SSH: the host's key.
    _rule(
        _SSH,
        r"REMOTE HOST IDENTIFICATION HAS CHANGED|differs from stored identity|is not the one we expected",
        authentication=True,
        fix=lambda uri: (
            f"the host's SSH key is not the one {_known_hosts(uri)} holds for it: if the host was reinstalled, "
            f"remove the old key (ssh-keygen -R '[{uri.host}]:{uri.port or 22}') and add the new one after checking "
            "its fingerprint; otherwise something may be intercepting the connection"
        ),
    ),
    _rule(
        _SSH,
        r"Host key verification failed|no suitable callback for host key verification",
        authentication=True,
        fix=lambda uri: (
            f"the host key of this SSH server is not in {_known_hosts(uri)}: check its fingerprint with the "
            f"host's owner and add it ({_keyscan(uri)}, or log in once with ssh and accept it); "
            f"{_skip_check(uri)} skips the check and suits throw-away test hosts only"
        ),
    ),
    # SSH: logging in.
    _rule(
        _SSH,
        r"Permission denied \(|failed to authenticate|Access denied for",
        authentication=True,
        fix=lambda uri: (
            f"the host refused the SSH key for user {uri.username or '(your login name)'}: check that keyfile= names "
            "a private key whose public half is in that account's ~/.ssh/authorized_keys (or that your ssh-agent "
            "holds it), and the user name in the URI"
        ),
    ),
    # SSH: the remote side.
    _rule(
        _SSH,
        r"(?:nc|virt-ssh-helper): (?:\d+: )?(?:command )?not found|non-zero code: 127\b",
        authentication=False,
        fix=lambda _uri: (
            "the remote host has neither virt-ssh-helper nor nc to reach its libvirt daemon: install libvirt's "
            "client tools there (Debian and Ubuntu: libvirt-clients; Fedora and RHEL: libvirt-client) or a netcat "
            "with -U (netcat-openbsd), or name another one with netcat="
        ),
    ),
    _rule(
        _SSH,
        r"nc: .*(?:No such file or directory|Connection refused|unix connect failed)"
        r"|Failed to connect socket to|non-zero code: 1\b",
        authentication=False,
        fix=lambda _uri: (
            "nothing answered on the remote host's libvirt socket: check that libvirtd (or virtqemud/virtproxyd) "
            "runs there and that socket= names its socket, or drop socket= to use the default "
            "(/var/run/libvirt/libvirt-sock)"
        ),
    ),
    _rule(
        _SSH,
        r"non-zero code: -1\b",  # libssh lost the remote command's exit status (seen for a missing nc, at random)
        authentication=False,
        fix=lambda _uri: (
            "the remote command that reaches libvirt ended at once: check that the host has virt-ssh-helper (install "
            "libvirt's client tools) or nc, and that libvirtd runs there on the socket socket= names (default "
            "/var/run/libvirt/libvirt-sock)"
        ),
    ),
    _rule(
        _SSH,
        r"ssh: connect to host .*Connection refused|Connection refused|Failed to connect",
        authentication=False,
        fix=lambda uri: (
            f"nothing accepts SSH connections at {_where(uri, 22)}: check the host, the port and that sshd runs there"
        ),
    ),
    _rule(
        _SSH,
        r"Could not resolve hostname|Name or service not known",
        authentication=False,
        fix=lambda uri: f"the host name {uri.host!r} does not resolve: check it",
    ),
    _rule(
        _SSH,
        r"timed out|Timeout connecting",
        authentication=False,
        fix=lambda uri: f"{_where(uri, 22)} did not answer SSH in time: check that the host is up and reachable",
    ),
    # TLS.
    _rule(
        frozenset({"tls"}),
        r"Failed to verify peer's certificate",
        authentication=True,
        fix=lambda uri: (
            "the server's certificate was not accepted: it must be signed by the CA in cacert.pem of pkipath= "
            "(default /etc/pki/CA/cacert.pem) and name the host as the URI does "
            f"({uri.host!r}, in its subjectAltName); install the CA that signed it, or connect by a name it lists"
        ),
    ),
    _rule(
        frozenset({"tls"}),
        r"Our own certificate .* failed validation",
        authentication=True,
        fix=lambda _uri: (
            "this client's certificate (clientcert.pem) is not signed by the CA in its own cacert.pem: put the "
            "certificate the server's CA issued for this client, with that CA, into pkipath= "
            "(default /etc/pki/libvirt and /etc/pki/CA)"
        ),
    ),
    _rule(
        frozenset({"tls"}),
        r"Unable to read TLS confirmation",
        authentication=True,
        fix=lambda _uri: (
            "the server ended the connection after the TLS handshake, which it does when it does not accept this "
            "client's certificate: have the CA the server trusts issue clientcert.pem, and check the server's "
            "tls_allowed_dn_list"
        ),
    ),
    _rule(
        frozenset({"tls"}),
        r"Cannot read (?:CA certificate|certificate|private key)|Cannot access (?:CA certificate|certificate|key)",
        authentication=True,
        fix=lambda _uri: (
            "the client's TLS files are missing: pkipath= (default /etc/pki/CA and /etc/pki/libvirt) must hold "
            "cacert.pem, clientcert.pem and clientkey.pem"
        ),
    ),
    _rule(
        _NETWORK,
        r"unable to connect to server at .*Connection refused",
        authentication=False,
        fix=lambda uri: (
            f"nothing listens at {_where(uri, 16514 if uri.transport == 'tls' else 16509)}: check the host and "
            "port, and that the daemon listens there (libvirtd --listen with listen_tls/listen_tcp, or "
            "virtproxyd's TLS/TCP sockets)"
        ),
    ),
    # SASL.
    _rule(
        _SASL,
        r"No worthy mechs found|Failed to collect auth credentials",
        authentication=True,
        fix=lambda _uri: "the daemon asks for a SASL user name and password: pass username= and password=",
    ),
    _rule(
        frozenset({"tcp"}),
        r"authentication failed: authentication failed",
        authentication=True,
        fix=lambda _uri: (
            "the daemon refused the SASL user name or password: check both; over qemu+tcp libvirt accepts only "
            "SASL mechanisms with a security layer (GSSAPI, DIGEST-MD5), so a daemon offering SCRAM-SHA-256 must be "
            "reached with qemu+tls"
        ),
    ),
    _rule(
        _SASL,
        r"authentication failed: authentication failed",
        authentication=True,
        fix=lambda _uri: "the daemon refused the SASL user name or password: check both",
    ),
)


def explain(message: str, uri: URI) -> Explanation | None:
    """What libvirt's ``message`` about opening ``uri`` means and how to fix it, or None if it is not known here."""
    transport = uri.transport or ("tls" if uri.host else "unix")
    for rule in _RULES:
        if transport in rule.transports and rule.pattern.search(message):
            return Explanation(rule.authentication, rule.fix(uri))
    return None
