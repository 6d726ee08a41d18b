"""qemu+tls:// with client certificates, and SASL (SCRAM-SHA-256 over TLS, DIGEST-MD5 over qemu+tcp), against
listening libvirtd daemons of this session that proxy to qemu:///system."""

from __future__ import annotations

import logging

import pytest
from servers import DIGEST_USER, SASL_PASSWORDS, SCRAM_USER, ListenerDaemon, TestPKI

import polyvisor
from polyvisor.errors import AuthenticationError, PolyvisorError


def _lists(uri: str, **credentials: str) -> None:
    with polyvisor.connect(uri, **credentials) as conn:
        assert conn.host_info().hypervisor.startswith("libvirt/QEMU")
        conn.list()


def test_tls_with_a_client_certificate_reaches_the_system_daemon(tls_daemon: ListenerDaemon) -> None:
    with polyvisor.connect(tls_daemon.uri("tls")) as conn, conn.watch():
        assert conn.host_info().hypervisor.startswith("libvirt/QEMU")
        assert isinstance(conn.list(), list)


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ("wrong_ca", "server's certificate was not accepted"),
        ("rogue_client", "does not accept this client's certificate"),
        ("mismatched", "not signed by the CA in its own cacert.pem"),
    ],
)
def test_a_certificate_that_does_not_verify_is_an_authentication_error(
    tls_daemon: ListenerDaemon, pki: TestPKI, layout: str, says: str
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(tls_daemon.uri("tls", pkipath=getattr(pki, layout)))
    assert says in caught.value.message


def test_a_server_certificate_for_another_name_is_refused(tls_daemon: ListenerDaemon) -> None:
    # The server's certificate names 127.0.0.1 only; verification is on, so "localhost" does not match it.
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(tls_daemon.uri("tls").replace("//127.0.0.1:", "//localhost:"))
    assert "name the host as the URI does ('localhost'" in caught.value.message


def test_scram_sha_256_over_tls_takes_polyvisors_username_and_password(scram_daemon: ListenerDaemon) -> None:
    _lists(scram_daemon.uri("tls"), username=SCRAM_USER, password=SASL_PASSWORDS[SCRAM_USER])
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(scram_daemon.uri("tls"), username=SCRAM_USER, password="not-the-password")
    assert "refused the SASL user name or password" in caught.value.message
    with pytest.raises(AuthenticationError) as missing:
        polyvisor.connect(scram_daemon.uri("tls"))
    assert "pass username= and password=" in missing.value.message


def test_scram_over_plain_tcp_is_refused_with_the_way_out(scram_daemon: ListenerDaemon) -> None:
    # libvirt accepts over TCP only SASL mechanisms with a security layer; SCRAM has none (measured here).
    with pytest.raises(AuthenticationError) as caught:
        polyvisor.connect(scram_daemon.uri("tcp"), username=SCRAM_USER, password=SASL_PASSWORDS[SCRAM_USER])
    assert "must be reached with qemu+tls" in caught.value.message


def test_sasl_over_tcp_with_a_security_layer_works(tls_daemon: ListenerDaemon) -> None:
    _lists(tls_daemon.uri("tcp"), username=DIGEST_USER, password=SASL_PASSWORDS[DIGEST_USER])


def test_the_password_is_in_no_log_repr_or_error(
    scram_daemon: ListenerDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    password = SASL_PASSWORDS[SCRAM_USER]
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)  # every logger, polyvisor's and the libraries'
    with polyvisor.connect(scram_daemon.uri("tls"), username=SCRAM_USER, password=password) as conn:
        seen += [repr(conn), str(conn.uri), repr(conn.uri), repr(conn.backend)]
        backend = conn.backend
        seen += [repr(vars(backend)), repr(vars(backend._client))]  # the client's own state, credentials included
        with pytest.raises(PolyvisorError) as caught:
            conn.vm("pvtest-remote-no-such-vm").status()
        seen += [str(caught.value), repr(caught.value)]
    for wrong in (password[::-1], password + "x"):
        with pytest.raises(AuthenticationError) as refused:
            polyvisor.connect(scram_daemon.uri("tls"), username=SCRAM_USER, password=wrong)
        seen += [str(refused.value), repr(refused.value), repr(refused.value.__cause__)]
        assert wrong not in " ".join(seen)
    seen += [record.getMessage() for record in caplog.records]
    seen.append(scram_daemon.log.read_text(errors="replace") if scram_daemon.log.exists() else "")
    assert password not in "\n".join(seen)
