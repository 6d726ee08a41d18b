"""Fixtures of the Hyper-V backend's tests: loopback Windows/Hyper-V hosts started in-process.

Without the loopback host (``polyvisor-hyperv-loopback`` not installed) the integration tests skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import polyvisor
from polyvisor.testing.components import unavailable

USER = "hv-admin"
PASSWORD = "Loopback-Pa55!;$(x)"
"""A password full of PowerShell metacharacters, which must never matter."""


def _loopback_class() -> Any:
    try:
        from polyvisor_hyperv_loopback import LoopbackHost
    except ImportError as error:  # pragma: no cover - depends on the environment
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the loopback Hyper-V host is required under CI=true: {error}")
        pytest.skip(f"the loopback Hyper-V host is not installed: {error}")
    return LoopbackHost


def _start(**kwargs: Any) -> Iterator[Any]:
    host_class = _loopback_class()
    try:
        host = host_class(USER, PASSWORD, **kwargs).start()
    except Exception as error:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"the loopback Hyper-V host failed to start: {error}")
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def loopback_http() -> Iterator[Any]:
    """A loopback host on plain HTTP that, like Windows, refuses unencrypted messages."""
    yield from _start()


@pytest.fixture(scope="session")
def loopback_https() -> Iterator[Any]:
    """A loopback host on HTTPS with a throw-away CA (``host.ca_path``)."""
    yield from _start(https=True)


@pytest.fixture
def loopback_private() -> Iterator[Any]:
    """A host of its own, for tests that count requests, drop connections or stall operations."""
    yield from _start()


def _uri_for(host: Any, transport: str, **params: str) -> str:
    """Return the hyperv:// URI of a loopback host."""
    query = {"transport": transport}
    if host.https:
        query["ca"] = str(host.ca_path)
    else:
        query["scheme"] = "http"
    query.update(params)
    text = "&".join(f"{key}={value}" for key, value in query.items())
    return f"hyperv://{USER}@127.0.0.1:{host.port}/?{text}"


@pytest.fixture
def uri_for() -> Callable[..., str]:
    """``uri_for(host, transport, **params)``: the hyperv:// URI of a loopback host."""
    return _uri_for


@pytest.fixture
def username() -> str:
    """The account the loopback hosts accept."""
    return USER


@pytest.fixture
def password() -> str:
    """The password the loopback hosts accept."""
    return PASSWORD


@pytest.fixture(params=["psrp", "winrm"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport in turn."""
    return str(request.param)


@pytest.fixture
def connect() -> Iterator[Callable[..., polyvisor.Connection]]:
    """Open connections that are closed after the test."""
    opened: list[polyvisor.Connection] = []

    def opener(uri: str, **kwargs: Any) -> polyvisor.Connection:
        kwargs.setdefault("password", PASSWORD)
        conn = polyvisor.connect(uri, **kwargs)
        opened.append(conn)
        return conn

    yield opener
    for conn in opened:
        conn.close()


@pytest.fixture
def conn(loopback_http: Any, transport: str, connect: Callable[..., polyvisor.Connection]) -> polyvisor.Connection:
    """A connection over each transport to the shared HTTP host (NTLM with message encryption)."""
    return connect(_uri_for(loopback_http, transport))


@pytest.fixture
def vm_name() -> str:
    """A name no other test uses."""
    return f"pv-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def loopback_slow() -> Iterator[Any]:
    """A host of its own whose Hyper-V cmdlets take 100 ms each, as real ones take tens to hundreds of ms."""
    yield from _start(cmdlet_latency=0.1)


SPN_HOST = "hv01.polyvisor.test"
"""The loopback hosts' name in the test realm: their keytab holds HTTP/hv01.polyvisor.test."""


@pytest.fixture
def kerberos_spn_host() -> str:
    """The loopback hosts' name in the test realm."""
    return SPN_HOST


@pytest.fixture(scope="session")
def kerberos_realm() -> Iterator[Any]:
    """A real MIT KDC on 127.0.0.1 (one a session) with the loopback account and the hosts' HTTP/ principal.

    Tests that use it point ``KRB5_CONFIG`` at its krb5.conf themselves (``kerberos_env``), so that other tests'
    Negotiate never meets this realm.
    """
    try:
        from polyvisor_hyperv_loopback.realm import KerberosRealm, KerberosToolsMissing
    except ImportError as error:  # pragma: no cover - depends on the environment
        unavailable(f"the loopback Hyper-V host is not installed: {error}")
    realm = KerberosRealm(hosts=(SPN_HOST,))
    try:
        realm.start()
    except KerberosToolsMissing as error:
        realm.close()
        unavailable(f"MIT Kerberos is missing (scripts/bootstrap installs it): {error}")
    try:
        realm.add_user(USER, PASSWORD)
        realm.add_service("HTTP", SPN_HOST)
        yield realm
    finally:
        realm.close()


@pytest.fixture
def kerberos_env(kerberos_realm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """This test's Kerberos: the realm's krb5.conf and a ticket cache of the test's own (empty until kinit)."""
    monkeypatch.setenv("KRB5_CONFIG", str(kerberos_realm.krb5_conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path}/ccache")
    return kerberos_realm


@pytest.fixture(scope="session")
def kerberos_http_host(kerberos_realm: Any) -> Iterator[Any]:
    """A loopback host on plain HTTP that accepts Kerberos with its keytab (and NTLM), refusing unencrypted SOAP."""
    yield from _start(keytab=kerberos_realm.keytab)


@pytest.fixture(scope="session")
def kerberos_https_host(kerberos_realm: Any) -> Iterator[Any]:
    """A loopback host on HTTPS that accepts Kerberos and, as after Enable-WSManCredSSP -Role Server, CredSSP."""
    yield from _start(https=True, keytab=kerberos_realm.keytab, allow_credssp=True)
