"""Hyper-V in a domain: Kerberos and CredSSP against a real MIT KDC on 127.0.0.1 and the loopback hosts.

One KDC serves the whole session (``kerberos_realm``); each test gets its own ticket cache (``kerberos_env``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import polyvisor
from polyvisor.errors import AuthenticationError, ValidationError
from polyvisor.testing import eventually
from polyvisor.testing.components import unavailable

# The same as the conftest's: the loopback account, its password, and the hosts' name in the realm.
USER = "hv-admin"
PASSWORD = "Loopback-Pa55!;$(x)"
SPN_HOST = "hv01.polyvisor.test"


@pytest.fixture(autouse=True)
def _same_account(username: str, password: str, kerberos_spn_host: str) -> None:
    assert (username, password, kerberos_spn_host) == (USER, PASSWORD, SPN_HOST)


def _uri(host: Any, transport: str, *, user: str = USER, **params: str) -> str:
    query = {"transport": transport, "auth": "kerberos", "spn_host": SPN_HOST}
    if host.https:
        query["ca"] = str(host.ca_path)
    else:
        query["scheme"] = "http"
    query.update(params)
    text = "&".join(f"{key}={value}" for key, value in query.items() if value)
    return f"hyperv://{user}@127.0.0.1:{host.port}/?{text}"


@pytest.fixture
def opened() -> Iterator[Callable[..., polyvisor.Connection]]:
    """Open connections (no password unless given) that are closed after the test."""
    connections: list[polyvisor.Connection] = []

    def open_connection(uri: str, **kwargs: Any) -> polyvisor.Connection:
        connection = polyvisor.connect(uri, **kwargs)
        connections.append(connection)
        return connection

    yield open_connection
    for connection in connections:
        connection.close()


def _kinit(realm: Any, *, lifetime: str | None = None) -> Path:
    ccache = Path(os.environ["KRB5CCNAME"].removeprefix("FILE:"))
    realm.kinit(USER, PASSWORD, ccache, lifetime=lifetime)
    return ccache


def test_a_password_gets_a_kerberos_ticket_over_encrypted_http(
    kerberos_env: Any, kerberos_http_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    before = kerberos_http_host.authentications().get("kerberos", 0)
    conn = opened(_uri(kerberos_http_host, transport), password=PASSWORD)
    name = f"pv-krb-{transport}"
    vm = conn.create({"name": name, "memory_mib": 512})
    try:
        assert name in [info.name for info in conn.list()]
    finally:
        vm.delete()
    # The host refuses plain-text SOAP on HTTP, so every message above travelled Kerberos-encrypted.
    assert kerberos_http_host.authentications().get("kerberos", 0) > before
    assert not Path(os.environ["KRB5CCNAME"].removeprefix("FILE:")).exists(), "the password's ticket stays in memory"


def test_the_kinit_ticket_cache_is_used_without_a_password(
    kerberos_env: Any, kerberos_http_host: Any, kerberos_https_host: Any, transport: str, opened: Any
) -> None:
    _kinit(kerberos_env)
    for host in (kerberos_http_host, kerberos_https_host):
        before = host.authentications().get("kerberos", 0)
        assert opened(_uri(host, transport)).list() is not None
        assert host.authentications().get("kerberos", 0) > before


def test_no_user_in_the_uri_takes_the_caches_principal(
    kerberos_env: Any, kerberos_http_host: Any, opened: Callable[..., polyvisor.Connection]
) -> None:
    _kinit(kerberos_env)
    uri = _uri(kerberos_http_host, "psrp").replace(f"{USER}@", "")
    assert opened(uri).list() is not None


def test_an_unknown_user_is_named_by_the_kdc(
    kerberos_env: Any, kerberos_http_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    with pytest.raises(AuthenticationError, match=r"knows no user nobody.*KDC_ERR_C_PRINCIPAL_UNKNOWN") as caught:
        opened(_uri(kerberos_http_host, transport, user="nobody"), password=PASSWORD).list()
    assert PASSWORD not in str(caught.value)


def test_an_unknown_service_principal_says_to_pass_spn_host(
    kerberos_env: Any, kerberos_http_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    with pytest.raises(AuthenticationError, match=r"no service principal HTTP/127\.0\.0\.1.*spn_host=NAME"):
        opened(_uri(kerberos_http_host, transport, spn_host=""), password=PASSWORD).list()


def test_a_wrong_password_is_refused_by_the_kdc_and_never_shown(
    kerberos_env: Any,
    kerberos_http_host: Any,
    transport: str,
    opened: Callable[..., polyvisor.Connection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wrong-Secret-4711"
    caplog.set_level(logging.DEBUG)
    conn = opened(_uri(kerberos_http_host, transport), password=wrong)
    with pytest.raises(AuthenticationError, match=r"refused the password.*KDC_ERR_PREAUTH_FAILED") as caught:
        conn.list()
    for text in (str(caught.value), repr(caught.value), repr(conn), caplog.text):
        assert wrong not in text


def test_an_expired_ticket_says_to_kinit_again(
    kerberos_env: Any, kerberos_http_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    ccache = _kinit(kerberos_env, lifetime="2s")
    klist = [shutil.which("klist") or "klist", "-s", "-c", f"FILE:{ccache}"]
    eventually(lambda: subprocess.run(klist, check=False).returncode != 0, timeout=15, what="the ticket to expire")
    with pytest.raises(AuthenticationError, match=r"ticket of .* has expired.*kinit"):
        opened(_uri(kerberos_http_host, transport)).list()


def test_no_ticket_at_all_says_to_kinit(
    kerberos_env: Any, kerberos_http_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    with pytest.raises(AuthenticationError, match=r"no Kerberos ticket to use.*kinit"):
        opened(_uri(kerberos_http_host, transport)).list()


@pytest.fixture(scope="module")
def skewed_host(kerberos_realm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A loopback host process whose clock runs 10 minutes ahead (libfaketime), with the realm's keytab."""
    faketime = shutil.which("faketime")
    if faketime is None:
        unavailable("faketime is not installed (Debian package faketime; scripts/bootstrap installs it)")
    from polyvisor_hyperv_loopback.launch import start_host

    directory = tmp_path_factory.mktemp("skewed-host")
    env = kerberos_realm.environment()
    env.update(POLYVISOR_HYPERV_HOST_PASSWORD=PASSWORD, FAKETIME_DONT_FAKE_MONOTONIC="1")
    command = [faketime, "-f", "+10m", sys.executable, "-m", "polyvisor_hyperv_loopback"]
    options = ["--username", USER, "--keytab", str(kerberos_realm.keytab), "--state-dir", str(directory)]
    host = start_host(options, ready_file=directory / "ready.json", command=command, env=env, echo_stderr=False)
    try:
        yield host
    finally:
        # Under libfaketime the host may miss SIGTERM; it holds nothing worth a clean exit.
        host.process.kill()
        host.process.wait(timeout=10)


def test_a_host_whose_clock_is_off_says_so(
    kerberos_env: Any, skewed_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    port = skewed_host.endpoints["http"]["port"]
    uri = f"hyperv://{USER}@127.0.0.1:{port}/?transport={transport}&scheme=http&auth=kerberos&spn_host={SPN_HOST}"
    with pytest.raises(AuthenticationError, match=r"refused the Kerberos ticket.*clock.*KRB_AP_ERR_SKEW"):
        opened(uri, password=PASSWORD).list()


def test_credssp_over_https_delegates_the_credentials(
    kerberos_env: Any, kerberos_https_host: Any, transport: str, opened: Callable[..., polyvisor.Connection]
) -> None:
    before = kerberos_https_host.authentications().get("credssp", 0)
    conn = opened(_uri(kerberos_https_host, transport, auth="credssp", spn_host=""), password=PASSWORD)
    assert conn.list() is not None
    assert kerberos_https_host.authentications().get("credssp", 0) > before


def test_credssp_with_a_wrong_password_is_refused_and_never_shown(
    kerberos_env: Any,
    kerberos_https_host: Any,
    transport: str,
    opened: Callable[..., polyvisor.Connection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wrong-Secret-0815"
    caplog.set_level(logging.DEBUG)
    conn = opened(_uri(kerberos_https_host, transport, auth="credssp", spn_host=""), password=wrong)
    with pytest.raises(AuthenticationError) as caught:
        conn.list()
    for text in (str(caught.value), repr(caught.value), repr(conn), caplog.text):
        assert wrong not in text


@pytest.mark.usefixtures("kerberos_env")
def test_credssp_is_refused_on_plain_http_before_anything_is_sent() -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens, and nothing is sent since validation refuses first.
    with pytest.raises(ValidationError, match=r"CredSSP delegates your password.*scheme=https"):
        polyvisor.connect("hyperv://u@127.0.0.1:9/?scheme=http&auth=credssp", password="x")


@pytest.mark.usefixtures("kerberos_env")
def test_a_kerberos_password_needs_its_user() -> None:
    with pytest.raises(ValidationError, match="needs its user"):
        polyvisor.connect("hyperv://127.0.0.1:9/?auth=kerberos", password="x")


@pytest.mark.usefixtures("kerberos_env")
def test_spn_host_must_be_a_host_name() -> None:
    with pytest.raises(ValidationError, match="not a host name"):
        polyvisor.connect("hyperv://u@127.0.0.1:9/?auth=kerberos&spn_host=a/b", password="x")
