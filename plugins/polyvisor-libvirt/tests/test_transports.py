"""The remote transports' failures, as libvirt 9.0 worded them here, each mapped to its fix (no daemon needed).

tests/remote provokes each one against real servers; these pin the texts, so a rule that stops matching shows.
"""

from __future__ import annotations

import pytest

from polyvisor.uri import URI
from polyvisor_libvirt.transports import _RULES, explain

SSH = URI.parse("qemu+ssh://root@kvm01.example.com:2222/system?keyfile=/k")
LIBSSH = URI.parse("qemu+libssh://root@kvm01.example.com/system?known_hosts=/etc/pv/known_hosts")
TLS = URI.parse("qemu+tls://kvm01.example.com/system")
TCP = URI.parse("qemu+tcp://kvm01.example.com/system")

SEEN = [
    (
        SSH,
        "Cannot recv data: No ED25519 host key is known for [127.0.0.1]:54989 and you have requested strict "
        "checking. Host key verification failed.: Connection reset by peer",
        True,
        "ssh-keyscan -p 2222 kvm01.example.com >> ~/.ssh/known_hosts",
    ),
    (
        LIBSSH,
        "libssh transport error: no suitable callback for host key verification",
        True,
        ">> /etc/pv/known_hosts",
    ),
    (
        SSH,
        "Cannot recv data: @@@@@@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@@@@@@ "
        "Host key verification failed.: Connection reset by peer",
        True,
        "ssh-keygen -R '[kvm01.example.com]:2222'",
    ),
    (
        SSH,
        "Cannot recv data: root@127.0.0.1: Permission denied (publickey).: Connection reset by peer",
        True,
        "keyfile=",
    ),
    (
        LIBSSH,
        "libssh transport error: failed to authenticate: Access denied for 'publickey'. Authentication that can "
        "continue: publickey",
        True,
        "authorized_keys",
    ),
    (SSH, "End of file while reading data: sh: 1: nc: not found: Input/output error", False, "virt-ssh-helper"),
    (LIBSSH, "libssh transport error: Remote command terminated with non-zero code: 127", False, "virt-ssh-helper"),
    (
        SSH,
        "End of file while reading data: nc: /run/libvirt/nope-sock: No such file or directory: Input/output error",
        False,
        "socket=",
    ),
    (LIBSSH, "libssh transport error: Remote command terminated with non-zero code: 1", False, "socket="),
    (LIBSSH, "libssh transport error: Remote command terminated with non-zero code: -1", False, "virt-ssh-helper"),
    (
        SSH,
        "Cannot recv data: ssh: connect to host 127.0.0.1 port 34767: Connection refused: Connection reset by peer",
        False,
        "nothing accepts SSH connections at kvm01.example.com:2222",
    ),
    (
        SSH,
        "Cannot recv data: Connection timed out during banner exchange Connection to 127.0.0.1 port 41731 timed out",
        False,
        "did not answer SSH in time",
    ),
    (TLS, "authentication failed: Failed to verify peer's certificate", True, "cacert.pem"),
    (
        TLS,
        "Our own certificate /p/clientcert.pem failed validation against /p/cacert.pem: The certificate hasn't got a "
        "known issuer.",
        True,
        "clientcert.pem",
    ),
    (TLS, "Unable to read TLS confirmation: Input/output error", True, "tls_allowed_dn_list"),
    (TLS, "Cannot read CA certificate '/p/cacert.pem': No such file or directory", True, "pkipath="),
    (TLS, "unable to connect to server at '127.0.0.1:44197': Connection refused", False, "kvm01.example.com:16514"),
    (TCP, "unable to connect to server at '127.0.0.1:44197': Connection refused", False, "kvm01.example.com:16509"),
    (
        TCP,
        "authentication failed: Failed to start SASL negotiation: -4 (SASL(-4): no mechanism available: No worthy "
        "mechs found)",
        True,
        "pass username= and password=",
    ),
    (TCP, "authentication failed: authentication failed", True, "SCRAM-SHA-256 must be reached with qemu+tls"),
    (TLS, "authentication failed: authentication failed", True, "check both"),
]


@pytest.mark.parametrize(("uri", "native", "authentication", "fix"), SEEN)
def test_each_seen_failure_names_its_fix(uri: URI, native: str, authentication: bool, fix: str) -> None:
    explained = explain(native, uri)
    assert explained is not None, native
    assert explained.authentication is authentication
    assert fix in explained.fix


def test_every_rule_is_pinned_by_a_seen_failure() -> None:
    matched = set()
    for uri, native, _, _ in SEEN:
        transport = uri.transport or "tls"
        matched.add(
            next(i for i, rule in enumerate(_RULES) if transport in rule.transports and rule.pattern.search(native))
        )
    unpinned = [rule.pattern.pattern for i, rule in enumerate(_RULES) if i not in matched]
    # One rule is there for a text not provoked here: a host name that does not resolve.
    assert unpinned == [r"Could not resolve hostname|Name or service not known"]


def test_a_rule_applies_only_to_its_transports() -> None:
    assert explain("Unable to read TLS confirmation: Input/output error", SSH) is None
    assert explain("Host key verification failed.", TLS) is None
    assert explain("internal error: client socket is closed", SSH) is None
