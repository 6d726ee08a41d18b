"""hyperv:// URIs and connect() keywords become connection options; bad ones fail clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyvisor.backend import Credentials
from polyvisor.errors import ValidationError
from polyvisor.uri import URI
from polyvisor_hyperv.options import ConnectionOptions, parse_options


def options(text: str, **kwargs: Any) -> ConnectionOptions:
    uri = URI.parse(text)
    kwargs.setdefault("password", "pw")
    return parse_options(uri, Credentials.from_kwargs(uri, kwargs))


def test_defaults_are_psrp_over_verified_https() -> None:
    opts = options("hyperv://admin@hv01/")
    assert (opts.transport, opts.auth, opts.scheme, opts.port, opts.verify) == (
        "psrp",
        "negotiate",
        "https",
        5986,
        True,
    )
    assert opts.endpoint == "https://hv01:5986/wsman"


def test_http_defaults_to_5985_with_encryption() -> None:
    opts = options("hyperv://admin@hv01/?scheme=http")
    assert (opts.port, opts.encryption) == (5985, "auto")


def test_query_and_keywords(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    opts = options(f"hyperv://admin@hv01:1234/?transport=winrm&auth=ntlm&ca={ca}", command_timeout=5)
    assert (opts.transport, opts.auth, opts.port, opts.ca_path, opts.command_timeout) == (
        "winrm",
        "ntlm",
        1234,
        str(ca),
        5.0,
    )
    assert options("hyperv://admin@hv01/?transport=winrm", transport="psrp").transport == "psrp"
    assert options("hyperv://admin@hv01/", ca_path=str(ca)).ca_path == str(ca)


def test_scheme_transport_suffix() -> None:
    assert options("hyperv+winrm://admin@hv01/").transport == "winrm"


@pytest.mark.parametrize(
    ("text", "kwargs", "field"),
    [
        ("hyperv://admin@hv01/?bogus=1", {}, "options"),
        ("hyperv://admin@hv01/", {"colour": "red"}, "options"),
        ("hyperv://admin@hv01/?transport=ssh", {}, "transport"),
        ("hyperv://admin@hv01/?auth=digest", {}, "auth"),
        ("hyperv://admin@hv01/?verify=maybe", {}, "verify"),
        ("hyperv://admin@hv01/?ca=/no/such/file.pem", {}, "ca_path"),
        ("hyperv://admin@hv01/?scheme=http&auth=basic", {}, "auth"),
        ("hyperv://admin@hv01/?scheme=http&encryption=never", {}, "encryption"),
        ("hyperv://admin@hv01/?operation_timeout=30&read_timeout=10", {}, "read_timeout"),
        ("hyperv://hv01/", {}, "username"),
        ("hyperv:///", {}, "uri"),
    ],
)
def test_invalid(text: str, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        options(text, **kwargs)
    assert info.value.field == field


def test_unknown_options_are_named() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        options("hyperv://admin@hv01/?bogus=1")


def test_http_basic_needs_explicit_consent() -> None:
    opts = options("hyperv://admin@hv01/?scheme=http&auth=basic&allow_http_basic=1")
    assert (opts.auth, opts.encryption) == ("basic", "never")


def test_password_never_shown() -> None:
    opts = options("hyperv://admin@hv01/", password="Sup3r-secret")
    assert "Sup3r-secret" not in repr(opts)
    with pytest.raises(ValidationError) as info:
        options("hyperv://admin:Sup3r-secret@hv01/?bogus=1", password=None)
    assert "Sup3r-secret" not in str(info.value)


def test_fractional_protocol_timeouts_round_up_never_to_zero() -> None:
    # WS-Management and the HTTP clients take whole seconds; 0.5 must not become 0 (no wait at all).
    opts = options("hyperv://admin@hv01/?operation_timeout=0.5&connect_timeout=0.2", read_timeout=1.5)
    assert (opts.operation_timeout, opts.read_timeout, opts.connect_timeout) == (1, 2, 1)
